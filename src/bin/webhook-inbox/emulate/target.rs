//! Where the emulator may deliver. It POSTs to whatever URL a tenant key
//! registers and shows the start of the answer in the attempt log, so without
//! a rule a key could read internal services (SSRF). The rule:
//!
//! - loopback (127.0.0.0/8, ::1) is allowed: that is what the emulator is for;
//! - link-local and cloud-metadata targets (169.254.0.0/16, fe80::/10,
//!   fd00:ec2::254, `metadata.google.internal`) are refused always, as are
//!   unspecified, multicast and reserved addresses;
//! - private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, 198.18/15,
//!   192.0.0/24, fc00::/7, fec0::/10) are refused unless the emulator was
//!   started with `--allow-private-targets`;
//! - IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4)
//!   are judged by that address.
//!
//! The rule is checked when a URL is registered and again at each delivery,
//! by the resolver the delivering agent uses: a name is resolved once, and
//! the connection goes to the addresses that were checked (no DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Duration;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long registration waits for a name to resolve before leaving the
/// check to delivery time.
const REGISTRATION_LOOKUP: Duration = Duration::from_secs(2);

/// Names of cloud metadata services, refused whatever they resolve to.
const METADATA_NAMES: &[&str] = &["metadata.google.internal", "metadata.goog", "metadata"];

/// Which targets deliveries may go to.
#[derive(Debug, Clone, Copy)]
pub struct Targets {
    /// Whether private ranges are allowed (`--allow-private-targets`).
    pub allow_private: bool,
}

/// Why a target is refused: shown to the API client and in the attempt log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Loopback,
    Public,
    Private(&'static str),
    Never(&'static str),
}

impl Targets {
    /// Whether a delivery may connect to `ip`.
    pub fn check_ip(self, ip: IpAddr) -> Result<(), Refused> {
        match classify(ip) {
            Class::Loopback | Class::Public => Ok(()),
            Class::Private(_) if self.allow_private => Ok(()),
            Class::Private(what) => Err(Refused(format!(
                "{ip} is {what}: refused unless the emulator is started with \
                 --allow-private-targets"
            ))),
            Class::Never(what) => Err(Refused(format!("{ip} is {what}: never a delivery target"))),
        }
    }

    /// Whether `host` (as in a URL, brackets allowed) is a refused name, or an
    /// address literal that is refused.
    pub fn check_host(self, host: &str) -> Result<(), Refused> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = bare.trim_end_matches('.').to_ascii_lowercase();
        if METADATA_NAMES.contains(&name.as_str()) {
            return Err(Refused(format!(
                "{} is a cloud metadata service: never a delivery target",
                crate::common::truncate(&name, 100)
            )));
        }
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.check_ip(ip),
            Err(_) => Ok(()),
        }
    }

    /// The check made when a URL is registered: its host, and what the host
    /// resolves to now. A name that does not resolve (yet), or not within a
    /// couple of seconds, passes here; delivery checks again.
    pub fn check_url(self, url: &str) -> Result<(), Refused> {
        let uri: Uri = url
            .parse()
            .map_err(|_| Refused("url is not a URL the emulator can deliver to.".to_owned()))?;
        let Some(host) = uri.host() else {
            return Err(Refused("url has no host.".to_owned()));
        };
        self.check_host(host)?;
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let (sender, answer) = mpsc::sync_channel(1);
        // Resolution cannot be cancelled; a slow one is left to finish on its own.
        std::thread::spawn(move || {
            let _ = sender.send((bare.as_str(), port).to_socket_addrs().map(Vec::from_iter));
        });
        match answer.recv_timeout(REGISTRATION_LOOKUP) {
            Ok(Ok(addresses)) => addresses.iter().try_for_each(|a| self.check_ip(a.ip())),
            _ => Ok(()),
        }
    }
}

/// The delivering agent's resolver: the system's, then [`Targets`] over the
/// name and every address it gave. The connection goes only to addresses
/// returned here, so the ones checked are the ones used.
#[derive(Debug)]
pub struct CheckedResolver {
    targets: Targets,
    system: DefaultResolver,
}

impl CheckedResolver {
    pub fn new(targets: Targets) -> Self {
        Self {
            targets,
            system: DefaultResolver::default(),
        }
    }
}

impl Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let refused = |r: Refused| {
            ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::PermissionDenied, r))
        };
        if let Some(host) = uri.host() {
            self.targets.check_host(host).map_err(refused)?;
        }
        let addresses = self.system.resolve(uri, config, timeout)?;
        // One refused address refuses the name: an answer that mixes a public
        // address with an internal one is not a receiver's.
        addresses
            .iter()
            .try_for_each(|a: &SocketAddr| self.targets.check_ip(a.ip()))
            .map_err(refused)?;
        Ok(addresses)
    }
}

/// The refusal inside a delivery's error, if the target was refused.
pub fn refusal(err: &ureq::Error) -> Option<&Refused> {
    match err {
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<Refused>(),
        _ => None,
    }
}

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (127, ..) => Class::Loopback,
        (0, ..) => Class::Never("an unspecified (this-network) address"),
        (169, 254, _) => Class::Never("link-local (cloud metadata services live there)"),
        (224..=239, ..) => Class::Never("a multicast address"),
        (240..=255, ..) => Class::Never("a reserved or broadcast address"),
        (10, ..) => Class::Private("a private address (10.0.0.0/8)"),
        (172, 16..=31, _) => Class::Private("a private address (172.16.0.0/12)"),
        (192, 168, _) => Class::Private("a private address (192.168.0.0/16)"),
        (100, 64..=127, _) => Class::Private("a shared address (100.64.0.0/10, carrier NAT)"),
        (198, 18..=19, _) => Class::Private("a benchmarking address (198.18.0.0/15)"),
        (192, 0, 0) => Class::Private("an IETF protocol address (192.0.0.0/24)"),
        _ => Class::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    let s = ip.segments();
    if ip == Ipv6Addr::LOCALHOST {
        return Class::Loopback;
    }
    if ip == Ipv6Addr::UNSPECIFIED {
        return Class::Never("the unspecified address");
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // Mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d)
    // and 6to4 (2002:aabb:ccdd::) forms reach an IPv4 address: judge that.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if s[..6] == [0; 6] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return classify_v4(embedded(s[1], s[2]));
    }
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254) {
        return Class::Never("a cloud metadata service (AWS, IPv6)");
    }
    match s[0] {
        0xfe80..=0xfebf => Class::Never("link-local (fe80::/10)"),
        0xff00..=0xffff => Class::Never("a multicast address"),
        0xfc00..=0xfdff => Class::Private("a unique local address (fc00::/7)"),
        0xfec0..=0xfeff => Class::Private("a site-local address (fec0::/10)"),
        _ => Class::Public,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: Targets = Targets {
        allow_private: false,
    };
    const LENIENT: Targets = Targets {
        allow_private: true,
    };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn loopback_and_public_pass_link_local_and_metadata_never_do() {
        for ok in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "93.184.216.34",
            "2606:4700::1111",
        ] {
            assert_eq!(STRICT.check_ip(ip(ok)), Ok(()), "{ok}");
        }
        for never in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
            "ff02::1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(STRICT.check_ip(ip(never)).is_err(), "{never}");
            assert!(
                LENIENT.check_ip(ip(never)).is_err(),
                "{never} even when lenient"
            );
        }
    }

    #[test]
    fn private_ranges_pass_only_when_allowed() {
        for private in [
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "198.18.0.1",
            "192.0.0.1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "::ffff:10.1.2.3",
            "::10.1.2.3",
        ] {
            let err = STRICT.check_ip(ip(private)).unwrap_err();
            assert!(
                err.0.contains("--allow-private-targets"),
                "{private}: {err}"
            );
            assert_eq!(LENIENT.check_ip(ip(private)), Ok(()), "{private}");
        }
        for public in [
            "172.15.0.1",
            "172.32.0.1",
            "100.63.0.1",
            "100.128.0.1",
            "11.0.0.1",
        ] {
            assert_eq!(STRICT.check_ip(ip(public)), Ok(()), "{public}");
        }
    }

    #[test]
    fn metadata_names_are_refused_however_they_are_spelled() {
        for name in [
            "metadata.google.internal",
            "METADATA.Google.Internal.",
            "metadata",
        ] {
            assert!(LENIENT.check_host(name).is_err(), "{name}");
        }
        assert!(STRICT.check_host("[fe80::1]").is_err());
        assert_eq!(STRICT.check_host("[::1]"), Ok(()));
        assert_eq!(STRICT.check_host("receiver.example"), Ok(()));
    }

    #[test]
    fn registration_resolves_what_the_address_parser_does_not_read() {
        // getaddrinfo reads these legacy forms as 169.254.169.254 and 10.0.0.1.
        assert!(STRICT.check_url("http://0251.0376.0251.0376/").is_err());
        assert!(STRICT.check_url("http://167772161/").is_err());
        assert_eq!(STRICT.check_url("http://127.0.0.1:9/hook"), Ok(()));
        assert_eq!(STRICT.check_url("http://localhost:9/hook"), Ok(()));
        assert!(STRICT.check_url("http://[fd00:ec2::254]/").is_err());
    }
}
