//! Certificates: generating them, loading them, and swapping them when the files change.

use anyhow::{Context, anyhow};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A CA and a serving certificate it signed, as PEM.
pub struct Bundle {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Makes a fresh CA and a serving certificate for `names` (IP addresses become IP SANs).
pub fn generate(names: &[String]) -> anyhow::Result<Bundle> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "bindguard webhook CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let mut params = CertificateParams::new(names.to_vec())?;
    let common_name = names.first().map_or("bindguard", String::as_str);
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    Ok(Bundle {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Writes `ca.crt`, `tls.crt` and `tls.key` (owner-only) into `dir`.
pub fn write_bundle(dir: &Path, bundle: &Bundle) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_file(&dir.join("ca.crt"), &bundle.ca_pem, 0o644)?;
    write_file(&dir.join("tls.crt"), &bundle.cert_pem, 0o644)?;
    write_file(&dir.join("tls.key"), &bundle.key_pem, 0o600)
}

fn write_file(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting permissions of {}", path.display()))
}

/// Reads a PEM certificate chain and private key into a signing-ready key.
pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
    let cert_pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    let key_pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    parse(&cert_pem, &key_pem).with_context(|| format!("{} / {}", cert.display(), key.display()))
}

fn parse(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_pem).collect::<Result<_, _>>()?;
    if chain.is_empty() {
        return Err(anyhow!("no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| anyhow!("private key: {e}"))?;
    let provider = rustls::crypto::ring::default_provider();
    let loaded = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| anyhow!("certificate and private key do not belong together: {e}"))?;
    Ok(Arc::new(loaded))
}

/// Serves whichever certificate was loaded last.
#[derive(Debug)]
pub struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Resolver {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(Resolver {
            current: RwLock::new(key),
        })
    }

    pub fn set(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = key;
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// A rustls server configuration that asks `resolver` for its certificate.
pub fn server_config(resolver: Arc<Resolver>) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// When the serving (first) certificate of `key` expires, in Unix seconds.
pub fn expiry(key: &CertifiedKey) -> Option<i64> {
    let der = key.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Re-reads the files every `every` and swaps the certificate when their content changed,
/// telling `loaded` about each new one. Polling content (not inotify) survives the symlink
/// swaps of mounted Secret volumes.
pub async fn watch(
    resolver: Arc<Resolver>,
    cert: PathBuf,
    key: PathBuf,
    every: Duration,
    loaded: impl Fn(&CertifiedKey) + Send + 'static,
) {
    let mut last = read_both(&cert, &key);
    loop {
        tokio::time::sleep(every).await;
        let now = read_both(&cert, &key);
        if now == last {
            continue;
        }
        match load(&cert, &key) {
            Ok(new) => {
                loaded(&new);
                resolver.set(new);
                tracing::info!(cert = %cert.display(), "reloaded TLS certificate");
                last = now;
            }
            Err(error) => {
                tracing::warn!(%error, "TLS files changed but cannot be loaded; keeping the old certificate")
            }
        }
    }
}

fn read_both(cert: &Path, key: &Path) -> Option<(Vec<u8>, Vec<u8>)> {
    Some((std::fs::read(cert).ok()?, std::fs::read(key).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_bundle_loads_and_names_ip_and_dns() {
        let bundle = generate(&["127.0.0.1".into(), "localhost".into()]).unwrap();
        let key = parse(bundle.cert_pem.as_bytes(), bundle.key_pem.as_bytes()).unwrap();
        assert_eq!(key.cert.len(), 1);
        assert!(bundle.ca_pem.contains("BEGIN CERTIFICATE"));
    }

    #[test]
    fn expiry_is_read_from_the_serving_certificate() {
        let bundle = generate(&["localhost".into()]).unwrap();
        let key = parse(bundle.cert_pem.as_bytes(), bundle.key_pem.as_bytes()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let expires = expiry(&key).expect("expiry readable");
        assert!(expires > now, "{expires} is not after {now}");
    }

    #[test]
    fn a_key_from_another_pair_is_refused() {
        let (one, two) = (
            generate(&["x".into()]).unwrap(),
            generate(&["x".into()]).unwrap(),
        );
        assert!(parse(one.cert_pem.as_bytes(), two.key_pem.as_bytes()).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(b"nope", b"nope").is_err());
        let bundle = generate(&["x".into()]).unwrap();
        assert!(
            parse(
                bundle.cert_pem.as_bytes(),
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .is_err()
        );
    }
}
