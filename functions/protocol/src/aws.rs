//! The AWS SDK configuration of HemoStat's client of AWS (the bridge's
//! Lambda invoker): TLS from rustls with ring, and an endpoint override that
//! also serves a local stand-in (the Lambda emulator).

use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use crate::error::ProtocolError;

/// Region used against a local endpoint when the environment names none:
/// the SDK refuses to sign without one, and local stand-ins ignore it.
pub const LOCAL_REGION: &str = "us-east-1";

/// The SDK's defaults with rustls on ring, not the SDK's default aws-lc-rs:
/// no C/CMake toolchain needed to cross-compile for arm64. Callers add
/// their timeouts before [`load`].
pub fn loader() -> ConfigLoader {
    let http =
        aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(http)
}

/// Loads the configuration. `endpoint`: `None` for AWS's regional endpoint
/// (region and credentials from the standard chain); `Some(url)` to
/// override it. A loopback override gets a default region and obviously
/// fake credentials unless the environment sets them: requests are still
/// signed, as in the cloud, and local stand-ins don't check signatures.
pub async fn load(mut loader: ConfigLoader, endpoint: Option<&str>) -> Result<SdkConfig, ProtocolError> {
    if let Some(url) = endpoint {
        let uri: http::Uri = url.parse().map_err(|_| ProtocolError::AwsEndpoint(url.to_owned()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(ProtocolError::AwsEndpoint(url.to_owned()));
        }
        loader = loader.endpoint_url(url.trim_end_matches('/'));
        if is_loopback(uri.host().unwrap_or_default()) {
            if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
                loader = loader.region(Region::new(LOCAL_REGION));
            }
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
                let fake = Credentials::new("hemostat-local", "hemostat-local", None, None, "hemostat-local");
                loader = loader.credentials_provider(fake);
            }
        }
    }
    let shared = loader.load().await;
    if shared.region().is_none() {
        return Err(ProtocolError::AwsRegion);
    }
    Ok(shared)
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("lambda.eu-west-1.amazonaws.com"));
        assert!(!is_loopback("10.0.0.5"));
    }
}
