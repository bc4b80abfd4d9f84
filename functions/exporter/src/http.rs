//! The function URL: `GET /metrics` (Prometheus text), `GET /` (a pointer
//! to it), everything else 404/405. With `EXPORTER_BEARER_TOKEN` set,
//! `/metrics` requires `Authorization: Bearer <token>` (Prometheus'
//! `authorization` scrape setting), for URLs whose AuthType is NONE.

use hemostat_protocol::secret::Secret;
use http::Method;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/metrics`; HEAD gets the headers only.
    Metrics {
        head: bool,
    },
    Index,
    NotFound,
    MethodNotAllowed,
    Unauthorized,
}

pub fn route(request: &ApiGatewayV2httpRequest, bearer_token: Option<&Secret>) -> Route {
    let method = &request.request_context.http.method;
    let path = request.raw_path.as_deref().or(request.request_context.http.path.as_deref()).unwrap_or("/");
    let path = if path.len() > 1 { path.trim_end_matches('/') } else { path };
    let get_or_head = *method == Method::GET || *method == Method::HEAD;
    match path {
        "/metrics" if !get_or_head => Route::MethodNotAllowed,
        "/metrics" => {
            if let Some(token) = bearer_token {
                let given = request
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or_default();
                if !token.matches(given.trim().as_bytes()) {
                    return Route::Unauthorized;
                }
            }
            Route::Metrics { head: *method == Method::HEAD }
        }
        "/" | "" if get_or_head => Route::Index,
        "/" | "" => Route::MethodNotAllowed,
        _ => Route::NotFound,
    }
}

/// A function URL response (API Gateway v2 payload format 2.0).
pub fn response(status: u16, content_type: &str, body: &str) -> Value {
    let mut headers = json!({"content-type": content_type, "cache-control": "no-store"});
    if status == 401 {
        headers["www-authenticate"] = json!("Bearer realm=\"hemostat-exporter\"");
    }
    if status == 405 {
        headers["allow"] = json!("GET, HEAD");
    }
    json!({"statusCode": status, "headers": headers, "body": body, "isBase64Encoded": false})
}

pub fn text(status: u16, body: &str) -> Value {
    response(status, "text/plain; charset=utf-8", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(method: &str, path: &str, auth: Option<&str>) -> ApiGatewayV2httpRequest {
        let mut headers = json!({"host": "x"});
        if let Some(a) = auth {
            headers["authorization"] = json!(a);
        }
        serde_json::from_value(json!({
            "version": "2.0", "rawPath": path, "rawQueryString": "", "headers": headers,
            "requestContext": {"http": {"method": method, "path": path}}, "isBase64Encoded": false
        }))
        .unwrap()
    }

    #[test]
    fn routes() {
        assert_eq!(route(&request("GET", "/metrics", None), None), Route::Metrics { head: false });
        assert_eq!(route(&request("GET", "/metrics/", None), None), Route::Metrics { head: false });
        assert_eq!(route(&request("HEAD", "/metrics", None), None), Route::Metrics { head: true });
        assert_eq!(route(&request("POST", "/metrics", None), None), Route::MethodNotAllowed);
        assert_eq!(route(&request("GET", "/", None), None), Route::Index);
        assert_eq!(route(&request("GET", "/other", None), None), Route::NotFound);
    }

    #[test]
    fn bearer_token() {
        let token = Secret::new("s3cret");
        let token = Some(&token);
        assert_eq!(route(&request("GET", "/metrics", None), token), Route::Unauthorized);
        assert_eq!(route(&request("GET", "/metrics", Some("Bearer nope")), token), Route::Unauthorized);
        assert_eq!(route(&request("GET", "/metrics", Some("Basic s3cret")), token), Route::Unauthorized);
        assert_eq!(route(&request("GET", "/metrics", Some("Bearer s3cret")), token), Route::Metrics { head: false });
        let r = response(401, "text/plain", "no");
        assert_eq!(r["statusCode"], 401);
        assert!(r["headers"]["www-authenticate"].as_str().unwrap().starts_with("Bearer"));
    }
}
