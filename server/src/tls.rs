//! TLS for `wss://`: a certificate chain and key read from PEM files (rustls
//! with its `ring` provider only), swapped for new ones on reload without
//! touching open connections — each handshake takes whatever configuration is
//! current when it starts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Where the certificate chain and its key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate chain {path}: {detail}; give a PEM file of CERTIFICATE blocks, leaf first")]
    Cert { path: String, detail: String },
    #[error("cannot read the private key {path}: {detail}; give a PEM file with one PRIVATE KEY block")]
    Key { path: String, detail: String },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
}

/// The TLS configuration in use, reloadable.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let config = server_config(&files)?;
        Ok(Tls { files, current: RwLock::new(config) })
    }

    /// Reads the files again; on failure the configuration in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }

    /// An acceptor with the configuration current now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let certs =
        read_certs(&files.cert).map_err(|detail| TlsError::Cert { path: files.cert.display().to_string(), detail })?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError::Key { path: files.key.display().to_string(), detail: e.to_string() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block in it".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_self_signed(files: &TlsFiles) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
    }

    #[test]
    fn a_reload_swaps_the_certificate_and_a_bad_file_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem") };
        write_self_signed(&files);
        let tls = Tls::load(files.clone()).unwrap();
        let first = tls.current.read().unwrap().clone();
        write_self_signed(&files);
        tls.reload().unwrap();
        let second = tls.current.read().unwrap().clone();
        assert!(!Arc::ptr_eq(&first, &second), "new handshakes use the new certificate");
        std::fs::write(&files.cert, "not a certificate").unwrap();
        let error = tls.reload().unwrap_err().to_string();
        assert!(error.contains("cert.pem"), "{error}");
        assert!(Arc::ptr_eq(&second, &tls.current.read().unwrap()), "the one in use stays");
    }

    #[test]
    fn missing_files_say_which_and_what_to_give() {
        let files = TlsFiles { cert: "/nonexistent/cert.pem".into(), key: "/nonexistent/key.pem".into() };
        let error = Tls::load(files).err().unwrap().to_string();
        assert!(error.contains("/nonexistent/cert.pem") && error.contains("PEM"), "{error}");
    }
}
