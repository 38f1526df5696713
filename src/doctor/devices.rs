//! Device nodes: the GPU's render nodes under `/dev/dri` (which hardware encoders they can
//! drive, whether this user may open them) and the input devices `/dev/uinput` and `/dev/uhid`
//! (virtual gamepads; `udev/60-hati.rules`).

use std::io;
use std::path::{Path, PathBuf};

use super::{Check, group_of, open_read_write};

/// A GPU render node, `/dev/dri/renderDNNN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderNode {
    /// `renderD128`.
    pub name: String,
    /// `/dev/dri/renderD128`.
    pub path: PathBuf,
    /// The kernel driver bound to its device (`i915`, `amdgpu`, `nvidia`), when known.
    pub driver: Option<String>,
}

/// Which family of GStreamer encoders a kernel driver's GPU can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderFamily {
    /// NVIDIA NVENC: `nvh264enc`, `nvh265enc`, `nvav1enc`.
    Nvenc,
    /// VA-API: `vah264enc`, … (and the older `vaapih264enc`).
    VaApi,
}

impl EncoderFamily {
    /// The family for a kernel driver name, if Hati's default encoders can use it.
    pub fn for_driver(driver: &str) -> Option<Self> {
        match driver {
            "i915" | "xe" | "amdgpu" | "radeon" => Some(Self::VaApi),
            "nvidia" => Some(Self::Nvenc),
            _ => None,
        }
    }

    /// How the report names it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Nvenc => "NVENC (nv* encoders)",
            Self::VaApi => "VA-API (va* encoders)",
        }
    }
}

/// The render nodes present, sorted by name.
pub fn render_nodes() -> Vec<RenderNode> {
    let Ok(entries) = std::fs::read_dir("/dev/dri") else {
        return Vec::new();
    };
    let mut nodes: Vec<RenderNode> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.starts_with("renderD").then(|| RenderNode {
                driver: driver_of(&name),
                path: entry.path(),
                name,
            })
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    nodes
}

/// The kernel driver of `/sys/class/drm/<node>/device`.
fn driver_of(node: &str) -> Option<String> {
    let link = std::fs::read_link(Path::new("/sys/class/drm").join(node).join("device/driver"));
    link.ok()?
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
}

/// One check per render node, or one `gpu` warning when there is none.
pub fn render_node_checks(nodes: &[RenderNode]) -> Vec<Check> {
    if nodes.is_empty() {
        return vec![Check::warn(
            "gpu",
            "no GPU render node in /dev/dri: software encoding only (x264), which costs CPU and \
             latency",
            "on a machine with a GPU, install its driver (Intel/AMD: Mesa and \
             intel-media-va-driver or mesa-va-drivers; NVIDIA: the proprietary driver); in a \
             container, pass the GPU in (docker run --device /dev/dri …)",
        )];
    }
    nodes
        .iter()
        .map(|node| render_node_check(node, open_read_write(&node.path)))
        .collect()
}

/// The verdict for one node, given whether opening it read-write worked.
fn render_node_check(node: &RenderNode, opened: io::Result<()>) -> Check {
    let id = format!("gpu.{}", node.name);
    let driver = node.driver.as_deref().unwrap_or("unknown driver");
    let family = node.driver.as_deref().and_then(EncoderFamily::for_driver);
    let drives = match family {
        Some(family) => format!("drives {}", family.describe()),
        None => "no hardware encoder Hati knows for this driver".to_owned(),
    };
    let what = format!("{} ({driver}): {drives}", node.path.display());
    match opened {
        Ok(()) if family.is_some() => Check::ok(id, format!("{what}; usable by this user")),
        Ok(()) => Check::warn(
            id,
            format!("{what}; usable by this user"),
            "Hati encodes in software on this GPU; an Intel, AMD or NVIDIA GPU encodes in hardware",
        ),
        Err(error) => {
            let group = group_of(&node.path).unwrap_or_else(|| "render".to_owned());
            Check::warn(
                id,
                format!("{what}; this user cannot open it read-write ({error})"),
                format!(
                    "add the user to the {group} group: sudo usermod -aG {group} $USER, then log \
                     in again (or restart Hati's service)"
                ),
            )
        }
    }
}

/// An input device node Hati may write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputDevice {
    /// `/dev/uinput`: Hati's virtual gamepads (and mice, keyboards) are created through it.
    Uinput,
    /// `/dev/uhid`: HID-level virtual devices (controllers' motion sensors, touchpads).
    Uhid,
}

impl InputDevice {
    /// The check's id and the kernel module's name.
    fn name(self) -> &'static str {
        match self {
            Self::Uinput => "uinput",
            Self::Uhid => "uhid",
        }
    }

    /// `/dev/uinput`.
    pub fn path(self) -> PathBuf {
        Path::new("/dev").join(self.name())
    }

    /// What is lost without it.
    fn impact(self) -> &'static str {
        match self {
            Self::Uinput => "virtual gamepads are unavailable (streaming works)",
            Self::Uhid => {
                "HID-level virtual devices are unavailable (Hati's gamepads use /dev/uinput; \
                 streaming works)"
            }
        }
    }

    /// How to give the input group write access.
    fn access_fix(self) -> &'static str {
        match self {
            Self::Uinput => {
                "install the repo's udev/60-hati.rules and add the user to the input group (see \
                 udev/README.md and docs/install.md)"
            }
            Self::Uhid => {
                "give it to the input group with a udev rule (KERNEL==\"uhid\", GROUP=\"input\", \
                 MODE=\"0660\" in /etc/udev/rules.d/60-hati-uhid.rules) and add the user to the \
                 input group (see udev/README.md)"
            }
        }
    }
}

/// `/dev/uinput` or `/dev/uhid`: present, and writable by this user?
pub fn input_device_check(device: InputDevice) -> Check {
    let path = device.path();
    input_device_verdict(device, path.exists(), open_read_write(&path))
}

/// The verdict for an input device, given whether it exists and whether opening it worked.
fn input_device_verdict(device: InputDevice, exists: bool, opened: io::Result<()>) -> Check {
    let id = device.name();
    let path = device.path();
    if !exists {
        return Check::warn(
            id,
            format!("{} is missing: {}", path.display(), device.impact()),
            format!(
                "load the module (sudo modprobe {id}; echo {id} | sudo tee \
                 /etc/modules-load.d/hati-{id}.conf), then {}; in a container, pass it in \
                 (--device {})",
                device.access_fix(),
                path.display()
            ),
        );
    }
    match opened {
        Ok(()) => Check::ok(id, format!("{} is writable by this user", path.display())),
        Err(error) => Check::warn(
            id,
            format!(
                "{} is not writable by this user ({error}): {}",
                path.display(),
                device.impact()
            ),
            format!("{}, then log in again", device.access_fix()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn drivers_map_to_encoder_families() {
        for driver in ["i915", "xe", "amdgpu", "radeon"] {
            assert_eq!(
                EncoderFamily::for_driver(driver),
                Some(EncoderFamily::VaApi)
            );
        }
        assert_eq!(
            EncoderFamily::for_driver("nvidia"),
            Some(EncoderFamily::Nvenc)
        );
        assert_eq!(EncoderFamily::for_driver("virtio_gpu"), None);
        assert_eq!(EncoderFamily::for_driver("nouveau"), None);
    }

    #[test]
    fn no_render_node_is_a_warning_not_a_failure() {
        let checks = render_node_checks(&[]);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].id, "gpu");
        assert_eq!(checks[0].status, Status::Warn);
        assert!(checks[0].summary.contains("software encoding only"));
    }

    #[test]
    fn render_node_verdicts() {
        let node = RenderNode {
            name: "renderD128".into(),
            path: "/dev/dri/renderD128".into(),
            driver: Some("i915".into()),
        };
        let ok = render_node_check(&node, Ok(()));
        assert_eq!((ok.id.as_str(), ok.status), ("gpu.renderD128", Status::Ok));
        assert!(ok.summary.contains("VA-API"), "{}", ok.summary);

        let denied = render_node_check(&node, Err(io::ErrorKind::PermissionDenied.into()));
        assert_eq!(denied.status, Status::Warn);
        assert!(denied.fix.unwrap().contains("usermod -aG"));

        let unknown = RenderNode {
            driver: Some("virtio_gpu".into()),
            ..node
        };
        assert_eq!(render_node_check(&unknown, Ok(())).status, Status::Warn);
    }

    #[test]
    fn input_device_verdicts() {
        let missing = input_device_verdict(InputDevice::Uinput, false, Ok(()));
        assert_eq!(
            (missing.id.as_str(), missing.status),
            ("uinput", Status::Warn)
        );
        assert!(missing.summary.contains("/dev/uinput is missing"));
        assert!(missing.summary.contains("gamepads are unavailable"));
        assert!(missing.fix.as_deref().unwrap().contains("modprobe uinput"));

        let denied = input_device_verdict(
            InputDevice::Uinput,
            true,
            Err(io::ErrorKind::PermissionDenied.into()),
        );
        assert_eq!(denied.status, Status::Warn);
        assert!(denied.fix.as_deref().unwrap().contains("60-hati.rules"));

        assert_eq!(
            input_device_verdict(InputDevice::Uinput, true, Ok(())).status,
            Status::Ok
        );
        let uhid = input_device_verdict(InputDevice::Uhid, false, Ok(()));
        assert_eq!(uhid.id, "uhid");
        assert!(uhid.fix.as_deref().unwrap().contains("KERNEL==\"uhid\""));
    }
}
