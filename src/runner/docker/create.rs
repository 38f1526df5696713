//! The ContainerCreate body: image, command, environment, mounts, devices and labels, with the
//! app's `create_options` deep-merged over it.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, DeviceMapping, HostConfig};
use serde_json::Value;

use super::{DockerError, HOST_LABEL, MANAGED_LABEL, SESSION_LABEL};
use crate::runner::config::DockerConfig;
use crate::runner::{LaunchContext, merged_env, parse_env};

/// Largest accepted `create_options` text.
const MAX_CREATE_OPTIONS_BYTES: usize = 64 * 1024;

/// Builds the ContainerCreate body for the app, `create_options` merged in.
pub(super) fn create_body(
    config: &DockerConfig,
    ctx: &LaunchContext,
    owner: &str,
) -> Result<ContainerCreateBody, DockerError> {
    let cmd = match &config.cmd {
        Some(cmd) => Some(
            shell_words::split(cmd).map_err(|source| DockerError::Split {
                cmd: cmd.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let app_env = parse_env(&config.env).map_err(|bad| DockerError::BadEnv(bad.0))?;
    let env = merged_env(&ctx.env, &app_env)
        .into_iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();

    let runtime_dir = ctx.runtime_dir.display().to_string();
    let mut binds = vec![format!("{runtime_dir}:{runtime_dir}")];
    if let Some(socket) = ctx.pulse_socket()
        && !socket.starts_with(&ctx.runtime_dir)
    {
        let socket = socket.display().to_string();
        binds.push(format!("{socket}:{socket}"));
    }
    for mount in &config.mounts {
        binds.push(parse_mount(mount)?);
    }
    let devices = config
        .devices
        .iter()
        .map(|device| parse_device(device))
        .collect::<Result<Vec<_>, _>>()?;

    let labels = managed_labels(ctx.session_id, owner);
    let body = ContainerCreateBody {
        image: Some(config.image.clone()),
        cmd,
        env: Some(env),
        labels: Some(labels.clone()),
        attach_stdin: Some(false),
        open_stdin: Some(false),
        tty: Some(false),
        host_config: Some(HostConfig {
            binds: Some(binds),
            devices: Some(devices),
            ..Default::default()
        }),
        ..Default::default()
    };
    let Some(options) = &config.create_options else {
        return Ok(body);
    };
    let mut merged = merge_create_options(body, options)?;
    // The labels are how Hati finds its containers again; create_options cannot remove them.
    merged
        .labels
        .get_or_insert_with(HashMap::new)
        .extend(labels);
    Ok(merged)
}

fn managed_labels(session_id: u32, owner: &str) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (MANAGED_LABEL.to_owned(), "true".to_owned()),
        (SESSION_LABEL.to_owned(), session_id.to_string()),
    ]);
    if !owner.is_empty() {
        labels.insert(HOST_LABEL.to_owned(), owner.to_owned());
    }
    labels
}

/// `src:dst` or `src:dst:ro|rw`, both paths non-empty and `dst` absolute.
fn parse_mount(entry: &str) -> Result<String, DockerError> {
    let bad = || DockerError::BadMount(entry.to_owned());
    let parts: Vec<&str> = entry.split(':').collect();
    match parts.as_slice() {
        [src, dst] | [src, dst, "ro" | "rw"] if !src.is_empty() && dst.starts_with('/') => {
            Ok(entry.to_owned())
        }
        _ => Err(bad()),
    }
}

/// `/dev/x`, `/dev/x:/dev/y` or `/dev/x:/dev/y:perms` (perms from `rwm`).
fn parse_device(entry: &str) -> Result<DeviceMapping, DockerError> {
    let bad = || DockerError::BadDevice(entry.to_owned());
    let parts: Vec<&str> = entry.split(':').collect();
    let (host, container, perms) = match parts.as_slice() {
        [host] => (*host, *host, "rwm"),
        [host, container] => (*host, *container, "rwm"),
        [host, container, perms] => (*host, *container, *perms),
        _ => return Err(bad()),
    };
    let perms_ok = !perms.is_empty() && perms.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    if !host.starts_with('/') || !container.starts_with('/') || !perms_ok {
        return Err(bad());
    }
    Ok(DeviceMapping {
        path_on_host: Some(host.to_owned()),
        path_in_container: Some(container.to_owned()),
        cgroup_permissions: Some(perms.to_owned()),
    })
}

/// Deep-merges the JSON object `options` over `body` (objects by key, arrays concatenated,
/// anything else replaced) and rejects keys the Engine API model does not have.
fn merge_create_options(
    body: ContainerCreateBody,
    options: &str,
) -> Result<ContainerCreateBody, DockerError> {
    if options.len() > MAX_CREATE_OPTIONS_BYTES {
        return Err(DockerError::CreateOptions(format!(
            "longer than {MAX_CREATE_OPTIONS_BYTES} bytes"
        )));
    }
    let user: Value = serde_json::from_str(options)
        .map_err(|e| DockerError::CreateOptions(format!("not valid JSON: {e}")))?;
    if !user.is_object() {
        return Err(DockerError::CreateOptions("not a JSON object".into()));
    }
    let mut merged = serde_json::to_value(&body)
        .map_err(|e| DockerError::CreateOptions(format!("cannot encode the base body: {e}")))?;
    deep_merge(&mut merged, user);
    let parsed: ContainerCreateBody = serde_json::from_value(merged.clone())
        .map_err(|e| DockerError::CreateOptions(e.to_string()))?;
    let reencoded = serde_json::to_value(&parsed)
        .map_err(|e| DockerError::CreateOptions(format!("cannot encode the merged body: {e}")))?;
    let mut unknown = Vec::new();
    dropped_keys(&merged, &reencoded, "", &mut unknown);
    if !unknown.is_empty() {
        return Err(DockerError::CreateOptions(format!(
            "unknown key(s) {} (keys are the Engine API's, e.g. \"HostConfig\": {{\"IpcMode\": \"host\"}})",
            unknown.join(", ")
        )));
    }
    Ok(parsed)
}

fn deep_merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(slot) => deep_merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(base), Value::Array(overlay)) => base.extend(overlay),
        (slot, overlay) => *slot = overlay,
    }
}

/// Object keys (with non-null values) present in `sent` but missing from `kept`, as dotted
/// paths. Free-form maps (labels, sysctls, …) round-trip whole, so only model keys can be lost.
fn dropped_keys(sent: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    let (Value::Object(sent), Value::Object(kept)) = (sent, kept) else {
        return;
    };
    for (key, value) in sent {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match kept.get(key) {
            Some(kept_value) => dropped_keys(value, kept_value, &here, out),
            None if value.is_null() => {}
            None => out.push(here),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DockerConfig {
        DockerConfig {
            image: "hati-test:1".into(),
            cmd: Some("/app --flag 'two words'".into()),
            env: vec!["APP=1".into(), "PULSE_SINK=override".into()],
            mounts: vec!["/srv/games:/games:ro".into(), "/tmp/x:/x".into()],
            devices: vec!["/dev/dri/renderD128".into(), "/dev/a:/dev/b:r".into()],
            create_options: None,
            stop_grace_seconds: 5,
        }
    }

    fn ctx() -> LaunchContext {
        LaunchContext {
            session_id: 7,
            env: vec![
                ("WAYLAND_DISPLAY".into(), "wayland-1".into()),
                ("PULSE_SERVER".into(), "unix:/run/hati/pulse/native".into()),
                ("PULSE_SINK".into(), "hati-7".into()),
            ],
            runtime_dir: "/run/hati/7".into(),
        }
    }

    #[test]
    fn body_has_everything() {
        let body = create_body(&config(), &ctx(), "hostid").unwrap();
        assert_eq!(body.image.as_deref(), Some("hati-test:1"));
        assert_eq!(body.cmd.unwrap(), ["/app", "--flag", "two words"]);
        let env = body.env.unwrap();
        assert!(env.contains(&"WAYLAND_DISPLAY=wayland-1".to_owned()));
        assert!(env.contains(&"PULSE_SINK=override".to_owned()));
        assert!(!env.contains(&"PULSE_SINK=hati-7".to_owned()));
        let labels = body.labels.unwrap();
        assert_eq!(labels[MANAGED_LABEL], "true");
        assert_eq!(labels[SESSION_LABEL], "7");
        assert_eq!(labels[HOST_LABEL], "hostid");
        let host = body.host_config.unwrap();
        assert_eq!(
            host.binds.unwrap(),
            [
                "/run/hati/7:/run/hati/7",
                "/run/hati/pulse/native:/run/hati/pulse/native",
                "/srv/games:/games:ro",
                "/tmp/x:/x"
            ]
        );
        let devices = host.devices.unwrap();
        assert_eq!(
            devices[0].path_in_container.as_deref(),
            Some("/dev/dri/renderD128")
        );
        assert_eq!(devices[1].cgroup_permissions.as_deref(), Some("r"));
    }

    #[test]
    fn bad_entries_are_named() {
        for (mounts, devices) in [
            (vec!["nocolon".to_owned()], vec![]),
            (vec!["/a:relative".to_owned()], vec![]),
            (vec!["/a:/b:rx".to_owned()], vec![]),
            (vec![], vec!["dev/x".to_owned()]),
            (vec![], vec!["/dev/x:/dev/y:q".to_owned()]),
        ] {
            let config = DockerConfig {
                mounts,
                devices,
                ..config()
            };
            let error = create_body(&config, &ctx(), "").unwrap_err();
            assert!(
                matches!(error, DockerError::BadMount(_) | DockerError::BadDevice(_)),
                "{error}"
            );
        }
    }

    #[test]
    fn create_options_merge_deeply() {
        let config = DockerConfig {
            create_options: Some(
                r#"{"Env": ["EXTRA=1"], "User": "1000:1000",
                    "HostConfig": {"IpcMode": "host", "Binds": ["/u:/u"], "CapAdd": ["SYS_NICE"]},
                    "Labels": {"mine": "yes", "hati.managed": "false"}}"#
                    .into(),
            ),
            ..config()
        };
        let body = create_body(&config, &ctx(), "").unwrap();
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(body.env.unwrap().last().unwrap(), "EXTRA=1");
        let host = body.host_config.unwrap();
        assert_eq!(host.ipc_mode.as_deref(), Some("host"));
        assert_eq!(host.binds.unwrap().last().unwrap(), "/u:/u");
        assert_eq!(host.cap_add.unwrap(), ["SYS_NICE"]);
        let labels = body.labels.unwrap();
        assert_eq!(labels["mine"], "yes");
        assert_eq!(labels[MANAGED_LABEL], "true");
    }

    #[test]
    fn create_options_errors() {
        for (options, expected) in [
            ("[1]", "not a JSON object"),
            ("{", "not valid JSON"),
            (r#"{"HostConfig": {"IpcMod": "host"}}"#, "HostConfig.IpcMod"),
            (r#"{"hostconfig": {}}"#, "hostconfig"),
            (r#"{"User": 5}"#, "invalid type"),
        ] {
            let config = DockerConfig {
                create_options: Some(options.into()),
                ..config()
            };
            let error = create_body(&config, &ctx(), "").unwrap_err().to_string();
            assert!(error.contains(expected), "{options}: {error}");
        }
    }
}
