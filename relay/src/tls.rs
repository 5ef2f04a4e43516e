//! TLS identities from ed25519 keys: no certificate authority, no X.509 parsing.
//!
//! Both sides present their ed25519 public key as a raw public key (RFC 7250): the
//! "certificate" is the key's SubjectPublicKeyInfo. The client accepts the node only if
//! that is exactly the node id it asked for (from the ticket); the node learns each
//! client's id from the same handshake. TLS 1.3 only, ed25519 signatures only.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer,
    UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::ticket::PartyId;
use crate::wire::ALPN;

/// DER prefix of an ed25519 SubjectPublicKeyInfo; the 32 key bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS for the relay: {0}")]
pub struct TlsError(String);

impl TlsError {
    /// An error with this description.
    pub fn from_message(message: String) -> Self {
        Self(message)
    }
}

/// The SubjectPublicKeyInfo of an ed25519 key.
pub fn spki(id: &PartyId) -> Vec<u8> {
    let mut out = ED25519_SPKI_PREFIX.to_vec();
    out.extend_from_slice(id.as_bytes());
    out
}

/// The node id in an ed25519 SubjectPublicKeyInfo, if that is what it is.
pub fn node_id_of(spki: &[u8]) -> Option<PartyId> {
    let key = spki.strip_prefix(ED25519_SPKI_PREFIX.as_slice())?;
    PartyId::from_bytes(key.try_into().ok()?).ok()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certified_key(key: &SigningKey) -> Result<Arc<CertifiedKey>, TlsError> {
    let der = key
        .to_pkcs8_der()
        .map_err(|e| TlsError(format!("encoding the key: {e}")))?;
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.as_bytes().to_vec()));
    let signing = provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| TlsError(format!("loading the key: {e}")))?;
    let id = PartyId::of(key);
    Ok(Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(spki(&id))],
        signing,
    )))
}

fn verify_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature_with_raw_key(
        message,
        &SubjectPublicKeyInfoDer::from(cert.as_ref()),
        dss,
        &provider().signature_verification_algorithms,
    )
}

fn tls12_refused() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::PeerIncompatible(
        rustls::PeerIncompatible::Tls12NotOffered,
    ))
}

/// The node's TLS configuration: its key, any client with an ed25519 key.
pub fn server_config(key: &SigningKey) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError(e.to_string()))?
        .with_client_cert_verifier(Arc::new(AnyEd25519Client))
        .with_cert_resolver(Arc::new(
            rustls::server::AlwaysResolvesServerRawPublicKeys::new(certified_key(key)?),
        ));
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// A client's TLS configuration: its key, and only the node `expected`.
pub fn client_config(
    key: &SigningKey,
    expected: PartyId,
) -> Result<rustls::ClientConfig, TlsError> {
    client_config_for(key, expected, ALPN)
}

/// The same for another service on the node's port, by its ALPN.
pub fn client_config_for(
    key: &SigningKey,
    expected: PartyId,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ExactNode(expected)))
        .with_client_cert_resolver(Arc::new(
            rustls::client::AlwaysResolvesClientRawPublicKeys::new(certified_key(key)?),
        ));
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// Accepts the node only if its raw public key is exactly the expected node id.
#[derive(Debug)]
struct ExactNode(PartyId);

impl ServerCertVerifier for ExactNode {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if intermediates.is_empty() && end_entity.as_ref() == spki(&self.0).as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// Accepts any client that proves it holds an ed25519 key; who it is comes from the
/// key, and what it may do is decided after the handshake.
#[derive(Debug)]
struct AnyEd25519Client;

impl ClientCertVerifier for AnyEd25519Client {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if intermediates.is_empty() && node_id_of(end_entity.as_ref()).is_some() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// The peer's node id on an established connection.
pub fn peer_id(connection: &quinn::Connection) -> Option<PartyId> {
    let identity = connection.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    node_id_of(certs.first()?.as_ref())
}
