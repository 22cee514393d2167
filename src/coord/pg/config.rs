//! `postgresql://` URLs: the server's own parameters plus ferrolock's (`lease`, `pool_max`, `schema`,
//! `namespace`, `sslrootcert`), turned into session settings that make a lease out of PostgreSQL's
//! timeouts.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::coord::url::redact;
use crate::error::{Error, Result};

/// The default lease: how long a paused or cut-off holder keeps its lock.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(15);
/// The default number of sessions one process opens at most (one per lock held or waited for).
pub(crate) const DEFAULT_POOL_MAX: usize = 32;
/// The first key of every advisory lock ferrolock takes (`'FLk1'`), unless the schema records another.
pub(crate) const DEFAULT_NAMESPACE: i32 = 0x464C_6B31;

/// A parsed `postgresql://` URL.
pub(crate) struct PgSettings {
    pub config: postgres::Config,
    pub lease: Duration,
    pub pool_max: usize,
    pub schema: String,
    pub namespace: i32,
    pub tls: Option<MakeRustlsConnect>,
    /// The URL with the password removed.
    pub url: String,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &self.url)
            .field("lease", &self.lease)
            .field("pool_max", &self.pool_max)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

fn bad(url: &str, message: impl std::fmt::Display) -> Error {
    Error::Coordinator {
        op: "coordinator URL",
        message: format!("{}: {message}", redact(url)),
    }
}

impl PgSettings {
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let (mut lease, mut pool_max, mut schema) = (DEFAULT_LEASE, DEFAULT_POOL_MAX, "ferrolock".to_owned());
        let (mut namespace, mut rootcert) = (DEFAULT_NAMESPACE, None::<PathBuf>);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "lease" => {
                    lease = humantime::parse_duration(value).map_err(|e| bad(url, format!("lease: {e}")))?;
                    if lease < Duration::from_secs(1) {
                        return Err(bad(url, "lease must be at least 1s"));
                    }
                }
                "pool_max" => {
                    pool_max = value
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| bad(url, "pool_max must be a positive integer"))?;
                }
                "schema" => {
                    let ok = !value.is_empty()
                        && value.len() <= 63
                        && value.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                        && value
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                    if !ok {
                        return Err(bad(url, "schema must match [a-z_][a-z0-9_]{0,62}"));
                    }
                    value.clone_into(&mut schema);
                }
                "namespace" => {
                    namespace = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad(url, "namespace must be a positive 32-bit integer"))?;
                }
                "sslrootcert" => rootcert = Some(PathBuf::from(value)),
                // The client library knows only disable/prefer/require; rustls verifies in every mode.
                "sslmode" if value == "verify-full" || value == "verify-ca" => kept.push("sslmode=require".to_owned()),
                _ => kept.push(pair.to_owned()),
            }
        }
        let rebuilt = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config = postgres::Config::from_str(&rebuilt).map_err(|e| bad(url, e))?;
        apply_lease(&mut config, lease);
        let tls = match config.get_ssl_mode() {
            SslMode::Disable => None,
            _ => Some(tls_connector(url, rootcert.as_deref())?),
        };
        Ok(Self {
            config,
            lease,
            pool_max,
            schema,
            namespace,
            tls,
            url: redact(url),
        })
    }

    /// How often a holder's session proves it is alive: three times per lease.
    pub(crate) fn heartbeat(&self) -> Duration {
        self.lease / 3
    }

    /// The session settings that make up the lease, as sent in the startup packet.
    pub(crate) fn expected_idle_timeout_ms(&self) -> u128 {
        self.lease.as_millis()
    }
}

/// Session settings (sent in the startup packet: no round trip, no admin rights) that end a holder's
/// session, and so free its locks, within about one lease of it going quiet, whether it is paused
/// (`idle_session_timeout`), cut off (TCP keepalives, `tcp_user_timeout`) or gone while its query
/// runs (`client_connection_check_interval`). The client socket gets the same keepalives, so the
/// holder's side notices too. Timeouts a site may have set (`statement_timeout`, `lock_timeout`) are
/// cleared: a lock wait is bounded by ferrolock's own `lock_timeout`.
fn apply_lease(config: &mut postgres::Config, lease: Duration) {
    let third = (lease / 3).max(Duration::from_secs(1));
    let ms = lease.as_millis();
    let options = format!(
        "{} -c idle_session_timeout={ms} -c tcp_keepalives_idle={k} -c tcp_keepalives_interval={k} \
         -c tcp_keepalives_count=2 -c tcp_user_timeout={ms} -c client_connection_check_interval={c} \
         -c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0 \
         -c synchronous_commit=on",
        config.get_options().unwrap_or(""),
        k = third.as_secs(),
        c = third.as_millis(),
    );
    config.options(options.trim());
    config.keepalives(true);
    config.keepalives_idle(third);
    config.keepalives_interval(third);
    config.keepalives_retries(2);
    config.tcp_user_timeout(lease);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("ferrolock");
    }
}

/// rustls with the ring provider: the server's certificate is always verified (against `sslrootcert`
/// if given, else the system's roots), including its host name. That is libpq's `verify-full`; a
/// server whose certificate cannot be verified is refused rather than trusted blindly.
fn tls_connector(url: &str, rootcert: Option<&std::path::Path>) -> Result<MakeRustlsConnect> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = rootcert {
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| bad(url, format!("sslrootcert: {e}")))?;
        for cert in certs {
            let cert = cert.map_err(|e| bad(url, format!("sslrootcert: {e}")))?;
            roots.add(cert).map_err(|e| bad(url, format!("sslrootcert: {e}")))?;
        }
    } else {
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(url, e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_our_parameters_from_the_servers() {
        let s = PgSettings::parse("postgresql://u:pw@127.0.0.1:5/db?lease=2s&pool_max=3&sslmode=disable").unwrap();
        assert_eq!(s.lease, Duration::from_secs(2));
        assert_eq!(s.pool_max, 3);
        assert!(s.tls.is_none());
        assert_eq!(
            s.url,
            "postgresql://u:***@127.0.0.1:5/db?lease=2s&pool_max=3&sslmode=disable"
        );
        let options = s.config.get_options().unwrap();
        assert!(options.contains("idle_session_timeout=2000"), "{options}");
        assert_eq!(s.config.get_tcp_user_timeout(), Some(&Duration::from_secs(2)));
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            "postgresql://h/db?lease=0s",
            "postgresql://h/db?lease=soon",
            "postgresql://h/db?pool_max=0",
            "postgresql://h/db?schema=Bad-Name",
            "postgresql://h/db?namespace=-1",
            "postgresql://h/db?nonsense=1",
        ] {
            assert!(PgSettings::parse(bad).is_err(), "{bad}");
        }
    }
}
