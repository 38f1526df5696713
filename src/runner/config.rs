//! `[apps.runner]`: what runs inside a session, as written in `config.toml`.
//!
//! ```toml
//! [apps.runner]
//! type = "process"                 # or "docker"
//! cmd = "weston-simple-shm"        # split like a shell would
//! env = ["KEY=value"]
//! ```
//!
//! Docker apps name an `image` and may override its command, add `mounts` (`"src:dst[:ro]"`),
//! `devices` (`"/dev/dri/renderD128"` or `"host:container[:rwm]"`) and a raw `create_options`
//! JSON object deep-merged into the Engine API's ContainerCreate body (Wolf's
//! `base_create_json`). The values are checked when an app starts, not when the file is read,
//! so one broken app never stops the host.

use serde::Deserialize;

/// Seconds a stopped app gets between SIGTERM and SIGKILL unless its config says otherwise.
pub const DEFAULT_STOP_GRACE_SECONDS: u64 = 5;

/// Largest accepted `stop_grace_seconds`: a session must end in bounded time.
pub const MAX_STOP_GRACE_SECONDS: u64 = 300;

/// `[apps.runner]`: the app a session runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RunnerConfig {
    /// A plain process on the host.
    Process(ProcessConfig),
    /// A Docker container, one per session.
    Docker(DockerConfig),
}

/// `type = "process"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// The command line, split like a POSIX shell would (quotes, backslashes; no expansion).
    pub cmd: String,
    /// Extra environment, `"KEY=value"` each; wins over the session's own variables.
    #[serde(default)]
    pub env: Vec<String>,
    /// Seconds between SIGTERM and SIGKILL when the session stops the app.
    #[serde(default = "default_stop_grace_seconds")]
    pub stop_grace_seconds: u64,
}

/// `type = "docker"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// The image, `name:tag`; it must already be present in the local engine.
    pub image: String,
    /// Overrides the image's command; split like a shell would.
    #[serde(default)]
    pub cmd: Option<String>,
    /// Extra environment, `"KEY=value"` each; wins over the session's own variables.
    #[serde(default)]
    pub env: Vec<String>,
    /// Bind mounts, `"src:dst"` or `"src:dst:ro"`.
    #[serde(default)]
    pub mounts: Vec<String>,
    /// Devices, `"/dev/x"` (same path inside) or `"/dev/x:/dev/y[:rwm]"`.
    #[serde(default)]
    pub devices: Vec<String>,
    /// A JSON object deep-merged into the ContainerCreate body before it is sent.
    #[serde(default)]
    pub create_options: Option<String>,
    /// Seconds the engine waits between SIGTERM and SIGKILL when the session stops the app.
    #[serde(default = "default_stop_grace_seconds")]
    pub stop_grace_seconds: u64,
}

fn default_stop_grace_seconds() -> u64 {
    DEFAULT_STOP_GRACE_SECONDS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct App {
        runner: Option<RunnerConfig>,
    }

    fn parse(text: &str) -> Result<Option<RunnerConfig>, toml::de::Error> {
        toml::from_str::<App>(text).map(|app| app.runner)
    }

    #[test]
    fn process_with_defaults() {
        let runner = parse("[runner]\ntype = \"process\"\ncmd = \"weston-simple-shm\"\n").unwrap();
        assert_eq!(
            runner,
            Some(RunnerConfig::Process(ProcessConfig {
                cmd: "weston-simple-shm".into(),
                env: vec![],
                stop_grace_seconds: DEFAULT_STOP_GRACE_SECONDS,
            }))
        );
    }

    #[test]
    fn docker_with_every_field() {
        let runner = parse(
            r#"
            [runner]
            type = "docker"
            image = "ghcr.io/games-on-whales/steam:edge"
            cmd = "/usr/bin/steam -bigpicture"
            env = ["RUN_SWAY=1"]
            mounts = ["/srv/games:/games:ro"]
            devices = ["/dev/dri/renderD128"]
            create_options = '{"HostConfig": {"IpcMode": "host"}}'
            stop_grace_seconds = 10
            "#,
        )
        .unwrap();
        let Some(RunnerConfig::Docker(docker)) = runner else {
            panic!("{runner:?}")
        };
        assert_eq!(docker.image, "ghcr.io/games-on-whales/steam:edge");
        assert_eq!(docker.cmd.as_deref(), Some("/usr/bin/steam -bigpicture"));
        assert_eq!(docker.mounts, ["/srv/games:/games:ro"]);
        assert_eq!(docker.devices, ["/dev/dri/renderD128"]);
        assert_eq!(docker.stop_grace_seconds, 10);
        assert!(docker.create_options.unwrap().contains("IpcMode"));
    }

    #[test]
    fn absent_runner_is_none() {
        assert_eq!(parse("").unwrap(), None);
    }

    #[test]
    fn unknown_key_is_rejected() {
        let error =
            parse("[runner]\ntype = \"process\"\ncmd = \"x\"\nimage = \"y\"\n").unwrap_err();
        assert!(
            error.to_string().contains("unknown field `image`"),
            "{error}"
        );
        let error =
            parse("[runner]\ntype = \"docker\"\nimage = \"x\"\nrun_cmd = \"y\"\n").unwrap_err();
        assert!(
            error.to_string().contains("unknown field `run_cmd`"),
            "{error}"
        );
    }

    #[test]
    fn unknown_type_is_rejected() {
        let error = parse("[runner]\ntype = \"child_session\"\n").unwrap_err();
        assert!(error.to_string().contains("child_session"), "{error}");
    }

    #[test]
    fn missing_required_field_is_rejected() {
        let error = parse("[runner]\ntype = \"docker\"\n").unwrap_err();
        assert!(error.to_string().contains("image"), "{error}");
    }
}
