//! The operator console in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, a small client over reqwest below), against the whole pipeline in process
//! (relay, fold, worker, api and the simulated Live+VOD on librdkafka's mock cluster).
//!
//! Chromium and chromedriver are required (Debian `chromium` and `chromium-driver`, installed
//! by `tests/run-all.sh`; `LIVE2VOD_CHROMIUM` / `LIVE2VOD_CHROMEDRIVER` point elsewhere). When
//! they are missing the tests fail and say so: nothing is skipped.
//!
//! Time appears only as hang guards, each with a message; assertions are on what the page
//! shows and on what reached the simulated VOD.
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use live2vod::demo::{Pipeline, PipelineConfig};
use live2vod::domain::time::format_rfc3339;
use live2vod::domain::{Engine, InputPos, Policy};
use live2vod::kafka::mock::EmbeddedBroker;
use live2vod::kafka::KafkaArgs;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

/// Both tests use the two cores (a pipeline, a browser); one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn tool(env: &str, name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` not found on PATH (or ${env}): the console's browser tests need headless \
             Chromium and its WebDriver; install them with `apt-get install -y chromium \
             chromium-driver` (tests/run-all.sh does)"
        )
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A chromedriver process with one headless Chromium session.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    profile: PathBuf,
}

impl Browser {
    async fn start() -> Browser {
        let chromium = tool("LIVE2VOD_CHROMIUM", "chromium");
        let chromedriver = tool("LIVE2VOD_CHROMEDRIVER", "chromedriver");
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("HTTP client");
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "hang guard: chromedriver did not answer within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = std::env::temp_dir().join(format!(
            "live2vod-console-chromium-{}-{port}",
            std::process::id()
        ));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--no-proxy-server",
                         "--window-size=1400,900",
                         format!("--user-data-dir={}", profile.display())],
            }
        }}});
        let text = http
            .post(format!("{base}/session"))
            .header("content-type", "application/json")
            .body(caps.to_string())
            .send()
            .await
            .expect("chromedriver answers")
            .text()
            .await
            .expect("body");
        let r: Value = serde_json::from_str(&text).expect("JSON");
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("Chromium did not start a WebDriver session: {r}"))
            .to_string();
        Browser {
            driver,
            base,
            session,
            http,
            profile,
        }
    }

    /// One WebDriver command; `Err` with WebDriver's error when it failed.
    async fn cmd(&self, post: Option<Value>, path: &str) -> Result<Value, String> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let req = match post {
            Some(body) => self
                .http
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string()),
            None => self.http.get(url),
        };
        let text = req
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        let r: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        match r["value"].get("error") {
            Some(e) => Err(format!("{e}: {}", r["value"]["message"])),
            None => Ok(r["value"].clone()),
        }
    }

    async fn goto(&self, url: &str) {
        self.cmd(Some(json!({ "url": url })), "/url")
            .await
            .unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
    }

    async fn js(&self, script: &str) -> Result<Value, String> {
        self.cmd(Some(json!({"script": script, "args": []})), "/execute/sync")
            .await
    }

    /// Polls `script` (a function body returning a value) until it returns something truthy
    /// (not null/false/empty); panics with `what` after `guard`.
    async fn wait(&self, what: &str, guard: Duration, script: &str) -> Value {
        let started = Instant::now();
        let mut last;
        loop {
            match self.js(script).await {
                Ok(v)
                    if !matches!(&v, Value::Null | Value::Bool(false))
                        && v.as_str() != Some("")
                        && v.as_array().is_none_or(|a| !a.is_empty()) =>
                {
                    return v
                }
                Ok(v) => last = v,
                Err(e) => last = Value::String(e),
            }
            if started.elapsed() > guard {
                let text = self
                    .js("return document.body ? document.body.innerText.slice(0, 3000) : ''")
                    .await
                    .unwrap_or_default();
                panic!("hang guard: {what} not seen within {guard:?} (last {last}); page:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn find(&self, css: &str) -> Result<String, String> {
        let v = self
            .cmd(
                Some(json!({"using": "css selector", "value": css})),
                "/element",
            )
            .await?;
        v[ELEMENT]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no element id in {v}"))
    }

    async fn click(&self, css: &str) -> Result<(), String> {
        let id = self.find(css).await?;
        self.cmd(Some(json!({})), &format!("/element/{id}/click"))
            .await
            .map(|_| ())
    }

    async fn type_into(&self, css: &str, text: &str) -> Result<(), String> {
        let id = self.find(css).await?;
        self.cmd(Some(json!({})), &format!("/element/{id}/click"))
            .await?;
        self.cmd(Some(json!({})), &format!("/element/{id}/clear"))
            .await?;
        self.cmd(
            Some(json!({ "text": text })),
            &format!("/element/{id}/value"),
        )
        .await
        .map(|_| ())
    }

    /// Retries `f` (an interaction that may hit an element the 5 s refresh just replaced).
    async fn retry<F, Fut>(&self, what: &str, f: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let mut last = String::new();
        for _ in 0..10 {
            match f().await {
                Ok(()) => return,
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        panic!("{what} failed: {last}");
    }

    async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine as _;
        if let Ok(Value::String(b64)) = self.cmd(None, "/screenshot").await {
            if let Ok(png) = base64::engine::general_purpose::STANDARD.decode(b64) {
                let _ = std::fs::write(path, png);
            }
        }
    }

    async fn quit(mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// The snapshot of a segment whose transcode has been running (a rendition reported, no
/// TranscodeComplete) for three hours: stuck.
fn stuck_snapshot(id: &str) -> Vec<u8> {
    let t = now_ms() - 3 * 3_600_000;
    let mut e = Engine::new(Policy::default());
    let acr = format!(
        r#"{{"EventTime":"{}","EventType":"AddLiveRecordVideoComplete","VideoId":"{id}","Status":"success","StreamName":"cam-stuck","DomainName":"stuck.example.com","AppName":"app","RecordStartTime":"{}","RecordEndTime":"{}"}}"#,
        format_rfc3339(t),
        format_rfc3339(t - 600_000),
        format_rfc3339(t)
    );
    let stc = format!(
        r#"{{"EventTime":"{}","EventType":"StreamTranscodeComplete","VideoId":"{id}","Status":"success","Definition":"HD","Format":"m3u8","FileUrl":"https://play.example.com/{id}.m3u8","JobId":"j-stuck"}}"#,
        format_rfc3339(t + 1000)
    );
    for (i, body) in [acr, stc].iter().enumerate() {
        e.apply(
            id,
            body.as_bytes(),
            InputPos {
                partition: 0,
                offset: i as i64,
            },
        )
        .expect("folds");
    }
    e.snapshot_bytes(id).expect("snapshot")
}

async fn produce(kafka: &KafkaArgs, topic: &str, key: &str, value: &[u8]) {
    let producer: FutureProducer = kafka.client_config().create().expect("producer");
    producer
        .send(
            FutureRecord::<str, [u8]>::to(topic).key(key).payload(value),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produced");
}

async fn get_json(url: &str) -> Value {
    let text = reqwest::get(url)
        .await
        .expect("api answers")
        .text()
        .await
        .expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_streams_sessions_stuck_videos_and_transcodes_by_hand() {
    let _serial = SERIAL.lock().await;
    live2vod::metrics::install();
    let browser = Browser::start().await;

    let broker = EmbeddedBroker::start(1).expect("mock cluster starts");
    let mut kafka = KafkaArgs::for_brokers(broker.bootstrap());
    kafka.topic_partitions = 3;
    broker
        .create_topics(&kafka.topics(), kafka.topic_partitions)
        .expect("topics");
    // The simulator's policy, plus: flow 3a's stored-only segments may be transcoded by hand.
    let policy = format!(
        "{}\n[[rules]]\nstreams = \"*/compose-auto-*\"\nsegments = {{ action = \"manual\" }}\n",
        live2vod::sim::policy_toml()
    );
    let mut cfg = PipelineConfig::new(kafka.clone(), Policy::parse(&policy).expect("policy"));
    cfg.sim.sessions = 8; // two sessions of each of the four flows
    cfg.sim.seed = 16;
    let pipeline = Pipeline::start(cfg).await.expect("pipeline starts");
    let api = pipeline.api_url.clone();
    pipeline.sim.deliver_all().await;
    let report = pipeline.sim.verify(&api, Duration::from_secs(60)).await;
    assert!(report.ok, "the pipeline did not converge:\n{report}");

    let stuck_id = "stuckvideo0000000000000000000001";
    produce(
        &kafka,
        &kafka.topics().aggregates,
        stuck_id,
        &stuck_snapshot(stuck_id),
    )
    .await;

    // 1. The streams of the scenario are listed.
    let mut want: Vec<String> = pipeline
        .sim
        .scenario()
        .streams
        .iter()
        .map(|s| format!("{}/{}/{}", s.domain, s.app, s.stream))
        .collect();
    want.sort();
    browser.goto(&format!("{api}/")).await;
    let script = format!(
        "const r = [...document.querySelectorAll('#streams tr[data-stream]')].map(r => r.dataset.stream); return r.length >= {} ? r : null;",
        want.len()
    );
    let shown = browser
        .wait("the scenario's streams", Duration::from_secs(30), &script)
        .await;
    let shown: Vec<String> = serde_json::from_value(shown).expect("names");
    assert_eq!(
        shown, want,
        "the console lists exactly the scenario's streams"
    );

    // 2. A stream page shows its sessions and the composed video.
    let compose_stream = want
        .iter()
        .find(|s| s.contains("/compose-auto-"))
        .expect("a flow 3a stream")
        .clone();
    let sj = get_json(&format!("{api}/v1/streams/{compose_stream}")).await;
    let sessions = sj["sessions"].as_array().expect("sessions").clone();
    let with_compose = sessions
        .iter()
        .find(|s| s["composed_video_id"].is_string())
        .expect("a composed session in flow 3a");
    let composed = with_compose["composed_video_id"]
        .as_str()
        .expect("id")
        .to_string();
    let composed_status = get_json(&format!("{api}/v1/videos/{composed}")).await["status"].clone();
    browser
        .retry("open the stream page", || {
            let css = format!("tr[data-stream=\"{compose_stream}\"] a.stream-link");
            let b = &browser;
            async move { b.click(&css).await }
        })
        .await;
    let script = format!(
        "const s = document.querySelectorAll('section.session[data-session]').length; \
         const c = [...document.querySelectorAll('a.composed-link')].map(a => a.textContent); \
         const card = document.querySelector('article[data-video=\"{composed}\"]'); \
         return s === {} && c.includes('{composed}') && card ? card.dataset.status : null;",
        sessions.len()
    );
    let card_status = browser
        .wait(
            "the sessions and the composed video",
            Duration::from_secs(30),
            &script,
        )
        .await;
    assert_eq!(card_status, composed_status);
    let segments_on_timeline = browser
        .js("return document.querySelectorAll('.timeline a.seg:not(.composed)').length")
        .await
        .expect("js");
    let all_segments: usize = sessions
        .iter()
        .map(|s| s["segments"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(segments_on_timeline, json!(all_segments));
    browser
        .screenshot(&std::env::temp_dir().join("live2vod-console-stream.png"))
        .await;

    // 3. The stuck video is in the stuck view.
    browser
        .retry("open the stuck view", || browser.click("#nav-stuck"))
        .await;
    browser
        .wait(
            "the stuck video in the stuck view",
            Duration::from_secs(30),
            &format!(
                "return !!document.querySelector('#stuck tr[data-stuck-video=\"{stuck_id}\"]')"
            ),
        )
        .await;

    // 4. A refused class shows the policy's reason, and the POST says 409.
    let refused_stream = want
        .iter()
        .find(|s| s.contains("/auto-"))
        .expect("a flow 1 stream");
    let rj = get_json(&format!("{api}/v1/streams/{refused_stream}")).await;
    let refused_seg = rj["sessions"][0]["segments"][0]
        .as_str()
        .expect("a segment")
        .to_string();
    browser
        .goto(&format!("{api}/#/stream/{refused_stream}"))
        .await;
    let reason = browser
        .wait(
            "the greyed button with the policy's reason",
            Duration::from_secs(30),
            &format!(
                "const c = document.querySelector('article[data-video=\"{refused_seg}\"]'); \
                 return c && c.querySelector('.transcode-btn').disabled ? c.querySelector('.policy-reason').textContent : null;"
            ),
        )
        .await;
    assert!(
        reason.as_str().is_some_and(|r| r.contains("refused")),
        "{reason}"
    );
    let r = reqwest::Client::new()
        .post(format!("{api}/v1/videos/{refused_seg}/transcode"))
        .body(r#"{"template_group_id":"tg-manual"}"#)
        .send()
        .await
        .expect("api answers");
    assert_eq!(r.status().as_u16(), 409);

    // 5. Transcode by hand a stored-only segment: a job starts at VOD and the page shows the
    //    video ready.
    let seg = with_compose["segments"][0]
        .as_str()
        .expect("a segment")
        .to_string();
    let before = get_json(&format!("{api}/v1/videos/{seg}")).await;
    assert_eq!(before["status"], "recorded", "{before}");
    assert_eq!(before["transcode"]["status"], "none", "{before}");
    browser
        .goto(&format!("{api}/#/stream/{compose_stream}"))
        .await;
    let card = format!("article[data-video=\"{seg}\"]");
    browser
        .wait(
            "the stored-only segment's enabled transcode button",
            Duration::from_secs(30),
            &format!("const b = document.querySelector('{card} .transcode-btn'); return b && !b.disabled;"),
        )
        .await;
    browser
        .retry("press transcode", || async {
            browser
                .type_into(&format!("{card} input.tg"), "tg-manual")
                .await?;
            browser.click(&format!("{card} .transcode-btn")).await
        })
        .await;
    let answer = browser
        .wait(
            "the api's answer next to the button",
            Duration::from_secs(30),
            &format!(
                "const r = document.querySelector('{card} .result'); return r && r.textContent;"
            ),
        )
        .await;
    assert!(
        answer
            .as_str()
            .is_some_and(|a| a.starts_with("202 accepted, command tc-")),
        "{answer}"
    );
    let started = Instant::now();
    while !pipeline
        .sim
        .stats()
        .jobs_started
        .contains_key(&(seg.clone(), "tg-manual".to_string()))
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "hang guard: no transcode job for {seg} reached the simulated VOD within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser
        .wait(
            "the segment ready on the page",
            Duration::from_secs(60),
            &format!("const c = document.querySelector('{card}'); return c && c.dataset.status === 'ready';"),
        )
        .await;
    assert_eq!(
        pipeline.sim.stats().jobs_started[&(seg.clone(), "tg-manual".to_string())],
        1
    );
    browser.quit().await;
    pipeline.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_operator_token_no_page_or_post_works_without_it() {
    let _serial = SERIAL.lock().await;
    live2vod::metrics::install();
    let browser = Browser::start().await;
    let token = "op-token-7c1e/4b2a";
    let broker = EmbeddedBroker::start(1).expect("mock cluster");
    let mut kafka = KafkaArgs::for_brokers(broker.bootstrap());
    kafka.topic_partitions = 1;
    broker.create_topics(&kafka.topics(), 1).expect("topics");
    let id = "tokenvideo000000000000000000001";
    produce(&kafka, &kafka.topics().aggregates, id, &stuck_snapshot(id)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut cfg = live2vod::api::Config::new(kafka.clone());
    cfg.operator_token = Some(live2vod::vod::client::Secret::new(token));
    let handle = live2vod::api::start(cfg, listener)
        .await
        .expect("api starts");
    handle.caught_up().await;
    let api = handle.base_url();
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let status = |r: reqwest::Response| r.status().as_u16();
    let post_url = format!("{api}/v1/videos/{id}/transcode");
    let body = r#"{"template_group_id":"tg-manual"}"#;

    // Without the token: no page, no asset, no console JSON, no POST.
    for path in [
        "/",
        "/console/app.js",
        "/console/app.css",
        "/v1/console/stats",
    ] {
        let r = http
            .get(format!("{api}{path}"))
            .send()
            .await
            .expect("answers");
        assert_eq!(status(r), 401, "{path} without the token");
    }
    let page = http.get(format!("{api}/")).send().await.expect("answers");
    let text = page.text().await.expect("text");
    assert!(
        text.contains("id=\"login\"") && !text.contains("app.js"),
        "{text}"
    );
    let r = http
        .post(&post_url)
        .body(body)
        .send()
        .await
        .expect("answers");
    assert_eq!(status(r), 401, "POST without the token");
    let r = http
        .post(&post_url)
        .bearer_auth("op-token-wrong")
        .body(body)
        .send()
        .await
        .expect("answers");
    assert_eq!(status(r), 401, "POST with a wrong token");
    // The JSON GETs stay open (documented).
    let r = http
        .get(format!("{api}/v1/videos/{id}"))
        .send()
        .await
        .expect("answers");
    assert_eq!(status(r), 200);

    // The login sets a cookie that is not the token; with the cookie but without the
    // console's header (a cross-site form) the POST is refused.
    let login = http
        .post(format!("{api}/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=wrong")
        .send()
        .await
        .expect("answers");
    assert_eq!(status(login), 401);
    let login = http
        .post(format!("{api}/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", token.replace('/', "%2F")))
        .send()
        .await
        .expect("answers");
    assert_eq!(login.status().as_u16(), 303);
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_string();
    assert!(
        cookie.contains("SameSite=Strict") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(token) && !cookie.contains("op-token"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().expect("name=value").to_string();
    let r = http
        .post(&post_url)
        .header("cookie", &pair)
        .header("origin", "http://evil.example")
        .body(body)
        .send()
        .await
        .expect("answers");
    assert_eq!(status(r), 403, "a cross-site POST with the cookie");
    let r = http
        .post(&post_url)
        .header("cookie", &pair)
        .body(body)
        .send()
        .await
        .expect("answers");
    assert_eq!(
        status(r),
        403,
        "a POST with the cookie but without the console's header"
    );
    let r = http
        .get(format!("{api}/"))
        .header("cookie", &pair)
        .send()
        .await
        .expect("answers");
    assert_eq!(status(r), 200, "the page with the cookie");
    let r = http
        .post(&post_url)
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("answers");
    assert_eq!(status(r), 202, "POST with the bearer token");

    // In the browser: the login form, a wrong token refused, the right one opens the console,
    // whose own POST works while a POST without its header does not.
    browser.goto(&format!("{api}/")).await;
    browser
        .wait(
            "the login form",
            Duration::from_secs(20),
            "return !!document.querySelector('#login') && !document.querySelector('#view');",
        )
        .await;
    browser
        .retry("log in with a wrong token", || async {
            browser.type_into("#token", "nope").await?;
            browser.click("#login-submit").await
        })
        .await;
    browser
        .wait(
            "the refusal",
            Duration::from_secs(20),
            "const e = document.querySelector('#login-error'); return e && e.textContent.includes('Wrong');",
        )
        .await;
    browser
        .retry("log in", || async {
            browser.type_into("#token", token).await?;
            browser.click("#login-submit").await
        })
        .await;
    browser
        .wait(
            "the console after the login",
            Duration::from_secs(20),
            "return !!document.querySelector('#view') && !!document.querySelector('#stats b');",
        )
        .await;
    let answers = browser
        .wait(
            "the two POSTs from the page",
            Duration::from_secs(20),
            &format!(
                "if (!window.__answers) {{ window.__answers = 'pending'; (async () => {{ \
                   const opts = (h) => ({{method: 'POST', credentials: 'same-origin', headers: h, body: '{body}'}}); \
                   const a = await fetch('/v1/videos/{id}/transcode', opts({{'Content-Type': 'application/json', 'X-Live2vod-Console': '1'}})); \
                   const b = await fetch('/v1/videos/{id}/transcode', opts({{'Content-Type': 'application/json'}})); \
                   window.__answers = [a.status, b.status]; }})(); }} \
                 return Array.isArray(window.__answers) ? window.__answers : null;"
            ),
        )
        .await;
    assert_eq!(answers, json!([202, 403]));
    let page_text = browser
        .js("return document.documentElement.outerHTML")
        .await
        .expect("js");
    assert!(
        !page_text.as_str().unwrap_or("").contains(token),
        "the token is not on the page"
    );
    browser.quit().await;
    handle.shutdown().await.expect("clean shutdown");
}
