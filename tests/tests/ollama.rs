//! `hostwarden once` and `run` against the stand-in Ollama serving real captured bodies: the
//! ollama.* metrics come out exactly, and the tuner's recommendation appears with its reasons.

#[cfg(test)]
mod ollama {
    use std::path::Path;
    use std::process::{Command, Output};

    use hostwarden_tests::bin;
    use hostwarden_tests::standin::{Standin, fixtures};
    use serde_json::{Value, json};

    fn config(dir: &Path, url: &str, extra: &str) -> std::path::PathBuf {
        let path = dir.join("hostwarden.toml");
        let text = format!(
            "[agent]\ninterval = \"300ms\"\nstate_dir = \"{}\"\n\n[ollama]\nurl = \"{url}\"\n\n{extra}",
            dir.display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn once_json(config: &Path) -> Value {
        let out = Command::new(bin())
            .args(["once", "--format", "json", "--config"])
            .arg(config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// ollama.* points, without the probe's measured latency.
    fn ollama_points(v: &Value) -> Vec<Value> {
        v["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"].as_str().unwrap().starts_with("ollama."))
            .filter(|p| p["name"] != "ollama.probe.latency")
            .cloned()
            .collect()
    }

    fn ollama_status(v: &Value) -> Value {
        v["collectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["collector"] == "ollama")
            .cloned()
            .unwrap()
    }

    fn fx(name: &str) -> String {
        fixtures().join(name).display().to_string()
    }

    fn llama_standin() -> Standin {
        Standin::start(
            &[
                "--model",
                "llama3.1:8b=6544691200/3403239424/32768",
                "--tags",
                &fx("tags.json"),
                "--show",
                &format!("llama3.1:8b={}", fx("show-llama3.1-8b-q4km-real.json")),
            ],
            &[],
        )
    }

    #[test]
    fn once_reports_the_models_and_recommends_for_a_spilling_model() {
        let server = llama_standin();
        let dir = tempfile::tempdir().unwrap();
        let v = once_json(&config(dir.path(), &server.url(), ""));
        let model = |loc: &str| json!({"gen_ai.request.model": "llama3.1:8b", "ollama.memory.location": loc});
        assert_eq!(
            ollama_points(&v),
            vec![
                json!({"name": "ollama.up", "unit": "1", "attributes": {}, "value": 1}),
                json!({"name": "ollama.model.count", "unit": "{model}", "attributes": {}, "value": 1}),
                json!({"name": "ollama.model.memory.usage", "unit": "By", "attributes": model("vram"), "value": 3_403_239_424u64}),
                json!({"name": "ollama.model.memory.usage", "unit": "By", "attributes": model("ram"), "value": 3_141_451_776u64}),
                json!({"name": "ollama.model.context_length", "unit": "{token}", "attributes": {"gen_ai.request.model": "llama3.1:8b"}, "value": 32768}),
            ]
        );
        let probe = v["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "ollama.probe.latency")
            .unwrap()["value"]
            .as_f64()
            .unwrap();
        assert!(probe > 0.0 && probe < 2.0, "probe took {probe}s");
        let status = ollama_status(&v);
        assert_eq!(status["health"], "degraded");
        assert_eq!(
            status["reason"],
            "unit not watched (no systemd): advice-only"
        );

        let tuner = &v["tuner"];
        assert_eq!(tuner["mode"], "observe");
        assert_eq!(tuner["advice_only"], true);
        let keys = &tuner["decision"]["keys"];
        assert_eq!(keys["OLLAMA_KV_CACHE_TYPE"]["value"], "q8_0");
        assert_eq!(keys["OLLAMA_FLASH_ATTENTION"]["value"], "1");
        assert_eq!(keys["OLLAMA_NUM_PARALLEL"]["value"], "1");
        assert_eq!(keys["OLLAMA_MAX_LOADED_MODELS"]["value"], "1");
        assert_eq!(keys["OLLAMA_KEEP_ALIVE"]["value"], "2m");
        let why = keys["OLLAMA_KV_CACHE_TYPE"]["reasons"].to_string();
        assert!(why.contains("Ollama 0.30.11"), "{why}");
        assert!(
            why.contains("llama3.1:8b spills to CPU: 3.2 GiB of 6.1 GiB in VRAM, 2.9 GiB in RAM"),
            "{why}"
        );
    }

    #[test]
    fn real_ps_capture_without_show_body_falls_back_and_says_why() {
        let server = Standin::start(
            &["--ps", &fx("ps-one-model-gpu.json"), "--version", "0.12.10"],
            &[],
        );
        let dir = tempfile::tempdir().unwrap();
        let v = once_json(&config(dir.path(), &server.url(), ""));
        let model = |loc: &str| json!({"gen_ai.request.model": "qwen2.5:0.5b", "ollama.memory.location": loc});
        let points = ollama_points(&v);
        assert_eq!(points[2]["attributes"], model("vram"));
        assert_eq!(points[2]["value"], 928_755_219u64);
        assert_eq!(points[3]["attributes"], model("ram"));
        assert_eq!(points[3]["value"], 0);
        let reason = ollama_status(&v)["reason"].as_str().unwrap().to_owned();
        assert!(
            reason.starts_with("qwen2.5:0.5b: /api/show answered HTTP 404"),
            "{reason}"
        );
        let kv = v["tuner"]["decision"]["keys"]["OLLAMA_KV_CACHE_TYPE"]["reasons"].to_string();
        assert!(kv.contains("Ollama 0.12.10 = era <= 0.12.10"), "{kv}");
    }

    /// Nothing listening, no systemd, no `ollama serve`: Ollama is absent, not down.
    #[test]
    fn nothing_listening_and_no_unit_is_absent_and_no_advice() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let v = once_json(&config(dir.path(), &format!("http://{port}"), ""));
        assert_eq!(ollama_points(&v), Vec::<Value>::new());
        let status = ollama_status(&v);
        assert_eq!(status["health"], "unavailable");
        assert_eq!(
            status["reason"],
            format!(
                "absent: no systemd to hold ollama.service, no `ollama serve` process, and \
                 nothing has answered at {port} since start"
            )
        );
        assert!(v.get("tuner").is_none(), "no advice without Ollama: {v}");
    }

    #[test]
    fn run_logs_the_recommendation_once_per_change_and_honours_pins() {
        let server = llama_standin();
        let dir = tempfile::tempdir().unwrap();
        let pin = "[tuner.ollama.OLLAMA_NUM_PARALLEL]\nmin = 1\nmax = 8\npin = 3\n";
        let cfg = config(dir.path(), &server.url(), pin);
        let out: Output = Command::new(bin())
            .args(["run", "--ticks", "3", "--view", "never", "--config"])
            .arg(&cfg)
            .env("HOSTWARDEN_LOG", "info")
            // The log writes colour codes unless told not to, even into a pipe.
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        assert_eq!(
            log.matches("Tuner recommendation changed.").count(),
            1,
            "three ticks, one change: {log}"
        );
        let line = log
            .lines()
            .find(|l| l.contains("Tuner recommends.") && l.contains("OLLAMA_NUM_PARALLEL"))
            .unwrap_or_else(|| panic!("no OLLAMA_NUM_PARALLEL line: {log}"));
        assert!(line.contains("value=3"), "{line}");
        assert!(line.contains("pinned by the operator to 3"), "{line}");
    }

    #[test]
    fn an_unknown_tuner_key_is_a_config_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(
            dir.path(),
            "http://127.0.0.1:11434",
            "[tuner.ollama.OLLAMA_NUM_PARALEL]\npin = 2\n",
        );
        let out = Command::new(bin())
            .args(["check-config", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("tuner.ollama.OLLAMA_NUM_PARALEL")
                && err.contains("not a key the tuner sets"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_ollama_url_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), "ftp://127.0.0.1:11434", "");
        let out = Command::new(bin())
            .args(["check-config", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("ollama.url") && err.contains("scheme must be http"),
            "{err}"
        );
    }
}
