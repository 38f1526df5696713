//! mDNS advertisement of `_nvstream._tcp` on the HTTP port (PROTOCOL.md §6), so Moonlight finds
//! the host by itself. No TXT records, as Sunshine.

use std::net::IpAddr;

use mdns_sd::{ServiceDaemon, ServiceInfo};

/// The service type Moonlight browses for.
pub const SERVICE_TYPE: &str = "_nvstream._tcp.local.";

/// A running advertisement; dropping it withdraws it.
pub struct Advertisement {
    daemon: ServiceDaemon,
    fullname: String,
}

impl Advertisement {
    /// Advertises `instance` on `port`: on every interface's addresses when `bind` is
    /// unspecified, else on `bind` alone.
    pub fn start(instance: &str, port: u16, bind: IpAddr) -> Result<Self, mdns_sd::Error> {
        let daemon = ServiceDaemon::new()?;
        let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "hati".into());
        let host_name = format!("{machine}.local.");
        let properties: [(&str, &str); 0] = [];
        let info = if bind.is_unspecified() {
            ServiceInfo::new(
                SERVICE_TYPE,
                instance,
                &host_name,
                "",
                port,
                &properties[..],
            )?
            .enable_addr_auto()
        } else {
            // Announce only where the host listens: never on interfaces it does not serve.
            daemon.disable_interface(mdns_sd::IfKind::All)?;
            if bind.is_loopback() {
                daemon.enable_interface(mdns_sd::IfKind::LoopbackV4)?;
            } else {
                daemon.enable_interface(mdns_sd::IfKind::Addr(bind))?;
            }
            ServiceInfo::new(
                SERVICE_TYPE,
                instance,
                &host_name,
                bind,
                port,
                &properties[..],
            )?
        };
        let fullname = info.get_fullname().to_owned();
        daemon.register(info)?;
        tracing::info!(service = %fullname, port, "advertising with mDNS");
        Ok(Self { daemon, fullname })
    }
}

impl Drop for Advertisement {
    fn drop(&mut self) {
        if let Ok(receiver) = self.daemon.unregister(&self.fullname) {
            let _ = receiver.recv_timeout(std::time::Duration::from_secs(1));
        }
        let _ = self.daemon.shutdown();
    }
}
