use clap::{Parser, Subcommand};
use live2vod::{allinone, api, bench, broker, demo, fold, reconcile, relay, replay, sim, worker};

/// live2vod: Alibaba Cloud VOD live-recording callbacks -> Kafka -> aggregates and
/// exactly-once-in-effect follow-up work (transcode, compose tracking, play-info refresh).
///
/// Start with `live2vod demo`: it runs everything in one process on an embedded broker.
#[derive(Parser, Debug)]
#[command(name = "live2vod", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start; boxing the larger variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Host librdkafka's embedded mock Kafka cluster; prints its bootstrap address first.
    Broker(broker::Args),
    /// HTTP endpoint for VOD callbacks: verify, keep the raw body, write it to Kafka.
    Relay(relay::Args),
    /// Fold callbacks into aggregates, snapshot them, emit commands.
    Fold(fold::Args),
    /// Execute commands against the VOD OpenAPI; feed outcomes back as events.
    Worker(worker::Args),
    /// Serve the aggregates over HTTP; accept manual transcode requests.
    Api(api::Args),
    /// Relay, fold, worker and api in one process (small installations).
    Run(allinone::Args),
    /// Rebuild aggregates from the callbacks topic without side effects.
    Replay(replay::Args),
    /// Ask VOD what it did; recover lost callbacks and silent failures as events.
    Reconcile(reconcile::Args),
    /// Simulate Alibaba Live + VOD: post callbacks, serve the OpenAPI, verify the result.
    Sim(sim::Args),
    /// Everything in one process on an embedded broker, with the simulator.
    Demo(demo::Args),
    /// Kafka topic administration (`topics create`).
    #[command(subcommand)]
    Topics(live2vod::kafka::cli::TopicsCommand),
    /// Benchmarks; the last stdout line is one JSON object of figures.
    #[command(subcommand)]
    Bench(bench::Bench),
}

impl Command {
    /// The Kafka options of roles that take them.
    fn kafka(&self) -> Option<&live2vod::kafka::KafkaArgs> {
        use live2vod::kafka::cli::TopicsCommand;
        match self {
            Command::Relay(a) => Some(&a.kafka),
            Command::Fold(a) => Some(&a.kafka),
            Command::Worker(a) => Some(&a.kafka),
            Command::Api(a) => Some(&a.kafka),
            Command::Run(a) => Some(&a.kafka),
            Command::Replay(a) => Some(&a.kafka),
            Command::Reconcile(a) => Some(&a.kafka),
            Command::Topics(TopicsCommand::Create(a)) => Some(&a.kafka),
            Command::Broker(_) | Command::Sim(_) | Command::Demo(_) | Command::Bench(_) => None,
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Before any client exists: a refused setting is reported without its (maybe secret) value.
    if let Some(Err(e)) = cli.command.kafka().map(|k| k.check()) {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    // The interactive commands print their own report on stdout; keep their logs to problems.
    let default_filter = match cli.command {
        Command::Demo(_) | Command::Bench(_) | Command::Replay(_) | Command::Topics(_) => "warn",
        _ => "info,rdkafka=warn",
    };
    live2vod::telemetry::init_with(default_filter);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Broker(a) => broker::run(a).await,
            Command::Relay(a) => relay::run(a).await,
            Command::Fold(a) => fold::run(a).await,
            Command::Worker(a) => worker::run(a).await,
            Command::Api(a) => api::run(a).await,
            Command::Run(a) => allinone::run(a).await,
            Command::Replay(a) => replay::run(a).await,
            Command::Reconcile(a) => reconcile::run(a).await,
            Command::Sim(a) => sim::run(a).await,
            Command::Demo(a) => demo::run(a).await,
            Command::Topics(t) => live2vod::kafka::cli::run(t).await,
            Command::Bench(b) => bench::run(b).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Catches clashing or malformed flag definitions in any role (clap checks them only
    /// in debug builds, when the subcommand is parsed).
    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
