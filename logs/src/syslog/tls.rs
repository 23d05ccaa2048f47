//! Whom a `tls://` receiver's certificate must chain to: the certificate authorities `[syslog] ca` names (PEM in
//! the config, or a PEM file on the host), else Mozilla's roots as `webpki-roots` carries them (keel has no
//! system store of its own). Built on the first connect and kept for the relay thread's life.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use keel_config::CaSource;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// A CA file larger than this is refused before it is read: a bundle of every public root is about 200 KiB.
const CA_FILE_MAX: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read the CA file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA file {path} is larger than {CA_FILE_MAX} bytes")]
    TooLarge { path: PathBuf },
    #[error("`ca` holds no PEM certificate keel can read")]
    NoCertificate,
    #[error("`ca`: a certificate is not one TLS can use")]
    BadCertificate {
        #[source]
        source: rustls::Error,
    },
    #[error("the TLS settings")]
    Config {
        #[source]
        source: rustls::Error,
    },
}

/// The trust settings of one receiver, and the client config once built.
#[derive(Debug)]
pub(crate) struct TlsTrust {
    ca: Option<CaSource>,
    config: Option<Arc<ClientConfig>>,
}

impl TlsTrust {
    pub(crate) fn new(ca: Option<CaSource>) -> TlsTrust {
        TlsTrust { ca, config: None }
    }

    /// The client config, built on the first call; a failure is retried on the next (the file may appear).
    pub(crate) fn client_config(&mut self) -> Result<Arc<ClientConfig>, TlsConfigError> {
        if let Some(config) = &self.config {
            return Ok(config.clone());
        }
        let roots = match &self.ca {
            None => RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
            Some(source) => roots_from_pem(&pem_text(source)?)?,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsConfigError::Config { source })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let config = Arc::new(config);
        self.config = Some(config.clone());
        Ok(config)
    }
}

fn pem_text(source: &CaSource) -> Result<Vec<u8>, TlsConfigError> {
    match source {
        CaSource::Pem(text) => Ok(text.clone().into_bytes()),
        CaSource::File(path) => {
            let read_error = |source| TlsConfigError::Read { path: path.clone(), source };
            let file = std::fs::File::open(path).map_err(read_error)?;
            let mut bytes = Vec::new();
            file.take(CA_FILE_MAX + 1).read_to_end(&mut bytes).map_err(read_error)?;
            if bytes.len() as u64 > CA_FILE_MAX {
                return Err(TlsConfigError::TooLarge { path: path.clone() });
            }
            Ok(bytes)
        }
    }
}

fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem) {
        let certificate = certificate.map_err(|_| TlsConfigError::NoCertificate)?;
        roots.add(certificate).map_err(|source| TlsConfigError::BadCertificate { source })?;
    }
    if roots.is_empty() {
        return Err(TlsConfigError::NoCertificate);
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_ca_trusts_mozillas_roots() {
        assert!(TlsTrust::new(None).client_config().is_ok());
    }

    #[test]
    fn refuses_a_ca_that_holds_no_certificate() {
        let garbage = CaSource::Pem("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".into());
        assert!(TlsTrust::new(Some(garbage)).client_config().is_err());
        let missing = CaSource::File("/nonexistent/ca.pem".into());
        let error = TlsTrust::new(Some(missing)).client_config().unwrap_err();
        assert!(matches!(error, TlsConfigError::Read { .. }), "{error:?}");
    }
}
