//! The `broker` role (see DESIGN.md).
use clap::Args as ClapArgs;

/// Options of `live2vod broker`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {}

/// Runs the role until it is asked to stop.
pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`live2vod broker` is not implemented yet")
}
