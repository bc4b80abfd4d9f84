//! The HTTP handler: routes, JSON answers and their headers.
//!
//! Every request is authenticated first (`auth`): a 401 with a Basic
//! challenge, or a 403 when the dashboard has no way to tell, is all an
//! unknown caller gets.
//!
//! | path | answer |
//! |---|---|
//! | `/` | the page (`text/html`, ETag, revalidated every load) |
//! | `/api/containers` | grid: every container's stats, remediation record, the silence that holds for it, its open circuit breaker, and every host's liveness |
//! | `/api/silences` | every live silence: target, reason, by whom, until when, id; every maintenance window with its next opening |
//! | `/api/issues` | health alerts of the window not yet followed by a successful remediation |
//! | `/api/events?container=&type=&status=&limit=` | the alert function's event lists, filtered |
//! | `/api/series/<host>/<name>` | the container's recent CPU and memory samples |
//! | `/api/approvals` | every pending approval (`Approval::to_json`) |
//! | `POST /api/approvals/<id>/approve`, `/deny` | a person's answer (JSON body: optional `reason`), from the dashboard's own page only (`auth::same_origin`): published as an `approval_answer` for the responder; 202 |
//! | `POST /slack/actions` | Slack's Approve and Deny buttons, with `SLACK_SIGNING_SECRET` set: authenticated by Slack's signature instead of the token (see `answers`) |
//!
//! Paths are the request's path below the function URL: the same whether
//! the emulator serves it under `/urls/<function>/`, on a port of its own,
//! or AWS at the root of the URL (a named API Gateway stage is stripped).
//! JSON is never cached (`no-store`: it is live data) and has `<`, `>` and
//! `&` escaped as `\u003c`..., so no sniffing browser can ever read it as
//! markup; the page is revalidated on every load (`no-cache` + ETag).

use http::{HeaderValue, Method, Response, StatusCode, header};
use lambda_http::{Body, RequestExt, request::RequestContext};
use serde::Serialize;

use hemostat_protocol::{
    ContainerRef, Envelope, EventKind,
    approval::{ApprovalAnswer, Decision},
    envelope::agent,
    keys,
};

use crate::{
    answers::{self, SLACK_PATH},
    auth::{self, Access},
    config::Config,
    error::DashboardError,
    page::Page,
    store::Store,
    views::{self, EventFilter},
};

/// What the handler needs of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    /// Below the function URL, starting with `/`, still percent-encoded.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub if_none_match: Option<String>,
    /// Every header (an answer's checks, Slack's signature).
    pub headers: http::HeaderMap,
    /// The body as sent (the emulator and AWS may base64 it on the way).
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn get(path_and_query: &str) -> HttpRequest {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        HttpRequest {
            method: Method::GET,
            path: path.to_owned(),
            query: query.to_owned(),
            if_none_match: None,
            headers: http::HeaderMap::new(),
            body: Vec::new(),
        }
    }

    /// From a function URL / API Gateway v2 request: `rawPath` less a named
    /// stage (`$default`, what function URLs use, has none in the path).
    pub fn from_lambda(request: &lambda_http::Request) -> HttpRequest {
        let raw = request.raw_http_path();
        let mut path = if raw.is_empty() { request.uri().path().to_owned() } else { raw.to_owned() };
        if let Some(RequestContext::ApiGatewayV2(ctx)) = request.request_context_ref()
            && let Some(stage) = ctx.stage.as_deref().filter(|s| !s.is_empty() && *s != "$default")
        {
            let prefix = format!("/{stage}");
            if path == prefix {
                path = "/".into();
            } else if path.starts_with(&format!("{prefix}/")) {
                path = path[prefix.len()..].to_owned();
            }
        }
        HttpRequest {
            method: request.method().clone(),
            path,
            query: request.uri().query().unwrap_or_default().to_owned(),
            if_none_match: request
                .headers()
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            headers: request.headers().clone(),
            body: request.body().as_ref().to_vec(),
        }
    }
}

pub struct Dashboard<S> {
    store: S,
    config: Config,
    page: Page,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl<S: Store> Dashboard<S> {
    pub fn new(config: Config, store: S) -> Self {
        let page = Page::new(config.refresh_seconds * 1000);
        Dashboard { store, config, page }
    }

    /// The lambda_http entry point: the caller first, then the route
    /// (Slack's path, once configured, authenticates by its signature).
    pub async fn handle(&self, request: lambda_http::Request) -> Response<Body> {
        let http = HttpRequest::from_lambda(&request);
        let slack = self.config.slack_signing_secret.as_ref().filter(|_| trimmed(&http.path) == SLACK_PATH);
        let response = match (slack, self.refusal(&request)) {
            (Some(secret), _) => self.slack(secret.expose().as_bytes(), &http).await,
            (None, Some(refused)) => refused,
            (None, None) => self.respond(&http).await,
        };
        let (parts, body) = response.into_parts();
        let body = if body.is_empty() { Body::Empty } else { Body::Text(body) };
        Response::from_parts(parts, body)
    }

    /// The answer to a caller who may not see the dashboard, if this one
    /// may not (see `auth`).
    fn refusal(&self, request: &lambda_http::Request) -> Option<Response<String>> {
        // Present only when the function URL's AuthType is AWS_IAM and the
        // caller passed it: AWS (or the emulator) writes the request context.
        let iam = matches!(request.request_context_ref(), Some(RequestContext::ApiGatewayV2(ctx))
            if ctx.authorizer.as_ref().is_some_and(|a| a.iam.is_some()));
        let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let mut response = match auth::check(self.config.auth_token.as_ref(), iam, authorization) {
            Access::Allowed => return None,
            Access::Challenge => {
                let mut r = plain(
                    StatusCode::UNAUTHORIZED,
                    "authentication required: the dashboard's token (DASHBOARD_AUTH_TOKEN), as the password\n",
                );
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(auth::CHALLENGE));
                r
            }
            Access::NotConfigured => {
                tracing::warn!("request refused: DASHBOARD_AUTH_TOKEN is not set and the function URL is not AWS_IAM");
                plain(
                    StatusCode::FORBIDDEN,
                    "the dashboard serves nobody: set DASHBOARD_AUTH_TOKEN, or serve it through a function URL \
                     whose AuthType is AWS_IAM\n",
                )
            }
        };
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Some(if request.method() == Method::HEAD { strip(response) } else { response })
    }

    pub async fn respond(&self, request: &HttpRequest) -> Response<String> {
        let head = request.method == Method::HEAD;
        let path = trimmed(&request.path);
        if let Some((id, decision)) = answers::answer_route(path) {
            if request.method != Method::POST {
                return not_allowed("POST");
            }
            return self.answer(request, id, decision).await;
        }
        // Slack's path without SLACK_SIGNING_SECRET: as any unknown path.
        if path == SLACK_PATH {
            let response = plain(StatusCode::NOT_FOUND, "not found\n");
            return if head { strip(response) } else { response };
        }
        if request.method != Method::GET && !head {
            return not_allowed("GET, HEAD");
        }
        let result = match path {
            "" | "/" => return self.page(request, head),
            "/api/containers" => self.containers().await,
            "/api/issues" => self.issues().await,
            "/api/silences" => self.silences().await,
            "/api/events" => self.events(&request.query).await,
            "/api/approvals" => self.approvals().await,
            _ => match path.strip_prefix("/api/series/") {
                Some(rest) => self.series(rest).await,
                None if path == "/api" || path.starts_with("/api/") => Err(Route::NotFound),
                None => {
                    let response = plain(StatusCode::NOT_FOUND, "not found\n");
                    return if head { strip(response) } else { response };
                }
            },
        };
        let response = match result {
            Ok(body) => json(StatusCode::OK, body),
            Err(Route::NotFound) => json(StatusCode::NOT_FOUND, error_body("not found")),
            Err(Route::Failed(DashboardError::BadRequest(reason))) => {
                json(StatusCode::BAD_REQUEST, error_body(&reason))
            }
            Err(Route::Failed(e)) => {
                tracing::warn!(path, error = %e, "dashboard read failed");
                json(StatusCode::SERVICE_UNAVAILABLE, error_body("redis unavailable"))
            }
        };
        if head { strip(response) } else { response }
    }

    /// A press of Approve or Deny on the page: from the page itself (not a
    /// form or script of another site), on a pending approval; published
    /// for the responder, which applies it (202: it is on its way).
    async fn answer(&self, request: &HttpRequest, id: &str, decision: Decision) -> Response<String> {
        if let Err(why) = auth::same_origin(&request.headers) {
            tracing::warn!(approval = %id, %why, "approval answer refused");
            return json(StatusCode::FORBIDDEN, error_body(&why));
        }
        let reason = match answers::reason(&request.body) {
            Ok(reason) => reason,
            Err(why) => return json(StatusCode::BAD_REQUEST, error_body(&why)),
        };
        let unavailable = |e: DashboardError| {
            tracing::warn!(approval = %id, error = %e, "approval answer failed");
            json(StatusCode::SERVICE_UNAVAILABLE, error_body("redis unavailable"))
        };
        match self.store.approval(id).await {
            Ok(Some(a)) if a["state"] == "pending" => {}
            Ok(Some(a)) => {
                let state = a["state"].as_str().unwrap_or("answered");
                let body = serde_json::json!({"error": format!("approval {id} is {state}"), "approval": a});
                return json(StatusCode::CONFLICT, body.to_string());
            }
            Ok(None) => return json(StatusCode::NOT_FOUND, error_body("no such approval")),
            Err(e) => return unavailable(e),
        }
        let user = auth::basic_user(request.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()));
        let answer = ApprovalAnswer::from_dashboard(id, decision, user.as_deref(), reason.as_deref());
        if let Err(e) = self.publish(&answer).await {
            return unavailable(e);
        }
        tracing::info!(approval = %id, answer = ?decision, by = %answer.by, "approval answer sent to the responder");
        let body =
            serde_json::json!({"id": id, "answer": decision, "by": answer.by, "status": "sent to the responder"});
        json(StatusCode::ACCEPTED, body.to_string())
    }

    /// Slack's button press: verified by its signature, passed on as
    /// received (the responder verifies it again); Slack wants a 200 within
    /// 3 s, and says so to the person otherwise.
    async fn slack(&self, secret: &[u8], request: &HttpRequest) -> Response<String> {
        if request.method != Method::POST {
            return not_allowed("POST");
        }
        let answer = match answers::slack_answer(secret, &request.headers, &request.body, now_ms() / 1000) {
            Ok(answer) => answer,
            Err(refused) => {
                tracing::warn!(status = %refused.status, reason = %refused.reason, "Slack request refused");
                let mut response = plain(refused.status, &format!("{}\n", refused.reason));
                response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                return response;
            }
        };
        match self.publish(&answer).await {
            Ok(()) => {
                tracing::info!(approval = %answer.id, answer = ?answer.answer, by = %answer.by,
                    "Slack answer sent to the responder");
                plain(StatusCode::OK, "")
            }
            Err(e) => {
                tracing::warn!(approval = %answer.id, error = %e, "Slack answer not published");
                plain(StatusCode::SERVICE_UNAVAILABLE, "redis unavailable\n")
            }
        }
    }

    async fn publish(&self, answer: &ApprovalAnswer) -> Result<(), DashboardError> {
        let env = Envelope::new(agent::DASHBOARD, EventKind::ApprovalAnswer, answer)?;
        self.store.publish(&env).await.map(|_| ())
    }

    async fn approvals(&self) -> Result<String, Route> {
        let pending = self.store.pending_approvals().await?;
        Ok(serde_json::json!({ "approvals": pending }).to_string())
    }

    fn page(&self, request: &HttpRequest, head: bool) -> Response<String> {
        let unchanged = request.if_none_match.as_deref().is_some_and(|tags| {
            tags.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == self.page.etag || t == "*")
        });
        let (status, body) = if unchanged {
            (StatusCode::NOT_MODIFIED, String::new())
        } else if head {
            (StatusCode::OK, String::new())
        } else {
            (StatusCode::OK, self.page.html.clone())
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        // Revalidated on every load: a new deployment shows at once, an
        // unchanged page costs a 304.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if let Ok(v) = HeaderValue::from_str(&self.page.etag) {
            h.insert(header::ETAG, v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.page.content_security_policy) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        response
    }

    async fn containers(&self) -> Result<String, Route> {
        let (members, collectors, silences, windows) = tokio::join!(
            self.store.members(keys::CONTAINERS),
            self.store.scored(keys::COLLECTORS),
            self.store.scored(keys::SILENCES),
            self.store.hash_values(keys::MAINTENANCE),
        );
        let (members, collectors, silences, windows) = (members?, collectors?, silences?, windows?);
        let now = now_ms();
        let (mut live, _) = views::live_silences(&silences, now);
        views::add_open_windows(&mut live, &windows, now);
        let (containers, total) = views::containers_to_read(&members, self.config.max_containers);
        let hosts = views::hosts_of(&containers, &collectors);
        // One round trip for everything keyed by container or host.
        let mut wanted: Vec<String> = containers.iter().map(keys::stats).collect();
        wanted.extend(containers.iter().map(keys::remediation));
        wanted.extend(hosts.iter().map(|h| keys::heartbeat(h)));
        // The breakers: one pipeline, each key in its container's slot.
        let breaker_keys: Vec<String> = containers.iter().map(keys::breaker).collect();
        // Compose projects and label matches reach Redis only in the health
        // alerts: read them only when a silence needs them.
        let alerts = async {
            if views::needs_alert_facts(&live) {
                self.store.stream_tail(&EventKind::HealthAlert.stream(), self.config.stream_scan).await
            } else {
                Ok(Vec::new())
            }
        };
        let (values, breakers, alerts) =
            tokio::join!(self.store.get_many(&wanted), self.store.get_with_ttl(&breaker_keys), alerts);
        let (mut values, breakers, alerts) = (values?, breakers?, alerts?);
        let heartbeats = values.split_off(2 * containers.len());
        let remediation = values.split_off(containers.len());
        let mut view =
            views::containers_view(&containers, total, &values, &remediation, &hosts, &heartbeats, &collectors, now);
        views::mark_safety(&mut view.containers, &live, &views::facts_from_alerts(&alerts), &breakers);
        to_json(&view)
    }

    async fn silences(&self) -> Result<String, Route> {
        let (raw, windows) = tokio::join!(self.store.scored(keys::SILENCES), self.store.hash_values(keys::MAINTENANCE));
        to_json(&views::silences_view(&raw?, &windows?, now_ms()))
    }

    async fn issues(&self) -> Result<String, Route> {
        let n = self.config.stream_scan;
        let streams = [
            EventKind::HealthAlert,
            EventKind::RemediationComplete,
            EventKind::FalseAlarm,
            EventKind::RemediationNeeded,
        ]
        .map(EventKind::stream);
        let (alerts, completions, false_alarms, needed) = tokio::join!(
            self.store.stream_tail(&streams[0], n),
            self.store.stream_tail(&streams[1], n),
            self.store.stream_tail(&streams[2], n),
            self.store.stream_tail(&streams[3], n),
        );
        let view = views::issues_view(
            &alerts?,
            &completions?,
            &false_alarms?,
            &needed?,
            now_ms(),
            self.config.issue_window_seconds,
        );
        to_json(&view)
    }

    async fn events(&self, query: &str) -> Result<String, Route> {
        let filter = EventFilter::parse(query)?;
        // The whole list (at most 100): filters apply after reading.
        let raw = self.store.list(&filter.list_key(), keys::EVENTS_MAX).await?;
        to_json(&views::events_view(&raw, &filter))
    }

    async fn series(&self, rest: &str) -> Result<String, Route> {
        let bad = || DashboardError::BadRequest("expected /api/series/<host>/<name>".into());
        let (host, name) = rest.split_once('/').ok_or_else(bad)?;
        let host = percent_decode(host).ok_or_else(bad)?;
        let name = percent_decode(name).ok_or_else(bad)?;
        // Docker names have no `/`; hosts should not either (it separates them in keys).
        if host.is_empty() || name.is_empty() || host.contains('/') || name.contains('/') {
            return Err(bad().into());
        }
        let container = ContainerRef::new(host, name);
        let raw = self.store.list(&keys::series(&container), keys::SERIES_MAX).await?;
        to_json(&views::series_view(&container, &raw))
    }
}

/// Why a route gave no data.
enum Route {
    NotFound,
    Failed(DashboardError),
}

impl From<DashboardError> for Route {
    fn from(e: DashboardError) -> Self {
        Route::Failed(e)
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String, Route> {
    serde_json::to_string(value).map_err(|e| Route::Failed(DashboardError::Protocol(e.into())))
}

fn error_body(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// JSON that is still the same JSON, but can never be read as HTML: `<`, `>`
/// and `&` only occur inside strings, where `\u003c`... mean the same.
pub fn escape_json_for_html(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c => out.push(c),
        }
    }
    out
}

fn json(status: StatusCode, body: String) -> Response<String> {
    let mut response = Response::new(escape_json_for_html(&body));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    // Live data: never from a cache.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn plain(status: StatusCode, body: &str) -> Response<String> {
    let mut response = Response::new(body.to_owned());
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn not_allowed(allow: &'static str) -> Response<String> {
    let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// `/api/containers/` is `/api/containers`; `/` stays `/`.
fn trimmed(path: &str) -> &str {
    match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    }
}

/// HEAD: the same status and headers, no body.
fn strip(response: Response<String>) -> Response<String> {
    let (parts, _) = response.into_parts();
    Response::from_parts(parts, String::new())
}

/// `%XX` decoding of a path segment; None if it is not valid UTF-8 after.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use serde_json::{Value, json};

    const HOSTILE: &str = "<img src=x onerror=alert(1)>&<script>alert(2)</script>";

    fn store() -> MemoryStore {
        let mut s = MemoryStore::default();
        let now = now_ms();
        s.sets.insert(keys::CONTAINERS.into(), vec!["h1/web".into(), format!("h1/{HOSTILE}")]);
        s.strings.insert(
            keys::stats(&ContainerRef::new("h1", "web")),
            json!({"name": "web", "status": "running", "cpu_pct": 5.5, "memory_pct": 20.0, "health": "healthy"})
                .to_string(),
        );
        s.strings.insert(keys::heartbeat("h1"), json!({"host": "h1", "version": "0.1.0"}).to_string());
        s.zsets.insert(keys::COLLECTORS.into(), vec![("h1".into(), now as f64)]);
        let event = |kind: &str, data: Value| {
            json!({"timestamp": "2025-11-03T10:30:53.000000", "agent": "HemoStat-Monitor", "type": kind, "data": data})
                .to_string()
        };
        s.lists.insert(
            keys::events("all"),
            vec![
                event("remediation_complete", json!({"container": "web", "host": "h1", "action": "restart", "result": {"status": "success", "action": "restart", "container": "web"}})),
                event(
                    "false_alarm",
                    json!({"container": HOSTILE, "host": "h1", "reason": HOSTILE,
                        "diagnosis": {"cause": HOSTILE, "summary": HOSTILE, "evidence": [HOSTILE], "recommendation": HOSTILE}}),
                ),
            ],
        );
        s.streams.insert(
            EventKind::HealthAlert.stream(),
            vec![(
                format!("{}-0", now - 1000),
                Some(event(
                    "health_alert",
                    json!({"container": HOSTILE, "host": "h1", "issues": [HOSTILE], "metrics": {"name": "x"}}),
                )),
            )],
        );
        s.streams.insert(
            EventKind::RemediationNeeded.stream(),
            vec![(
                format!("{}-0", now - 500),
                Some(event(
                    "remediation_needed",
                    json!({"container": HOSTILE, "host": "h1", "action": "restart", "reason": HOSTILE, "confidence": 0.9,
                        "diagnosis": {"cause": "port_in_use", "evidence": [HOSTILE], "recommendation": HOSTILE}}),
                )),
            )],
        );
        let silence = hemostat_protocol::silence::Silence {
            id: "s-1".into(),
            kind: hemostat_protocol::silence::TargetKind::Container,
            target: "h1/web".into(),
            reason: HOSTILE.into(),
            created: "2026-12-02T10:00:00+00:00".into(),
            until: "2099-01-01T00:00:00+00:00".into(),
            by: "alice".into(),
            window: None,
        };
        let ended = hemostat_protocol::silence::Silence { id: "s-0".into(), ..silence.clone() };
        s.zsets.insert(
            keys::SILENCES.into(),
            vec![
                (serde_json::to_string(&silence).unwrap(), (now + 600_000) as f64),
                (serde_json::to_string(&ended).unwrap(), (now - 1) as f64),
            ],
        );
        let web = ContainerRef::new("h1", "web");
        s.strings.insert(keys::breaker(&web), format!("circuit breaker open: {HOSTILE}"));
        s.ttls.insert(keys::breaker(&web), 30_000);
        s.lists.insert(
            keys::series(&ContainerRef::new("h1", "web")),
            vec![r#"{"t":2,"cpu":2.0,"mem":20.0}"#.into(), r#"{"t":1,"cpu":1.0,"mem":10.0}"#.into()],
        );
        s
    }

    fn dashboard(s: MemoryStore) -> Dashboard<MemoryStore> {
        Dashboard::new(Config::default(), s)
    }

    async fn get(d: &Dashboard<MemoryStore>, path: &str) -> (StatusCode, String, Response<String>) {
        let r = d.respond(&HttpRequest::get(path)).await;
        let ct = r.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        (r.status(), ct, r)
    }

    fn body_json(r: &Response<String>) -> Value {
        serde_json::from_str(r.body()).unwrap_or_else(|e| panic!("{e}: {}", r.body()))
    }

    #[tokio::test]
    async fn page_is_html_with_security_headers_and_revalidates() {
        let d = dashboard(store());
        let (status, ct, r) = get(&d, "/").await;
        assert_eq!((status, ct.as_str()), (StatusCode::OK, "text/html; charset=utf-8"));
        assert!(r.body().starts_with("<!doctype html>"));
        let h = r.headers();
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(h[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("script-src 'sha256-"));
        let etag = h[header::ETAG].to_str().unwrap().to_owned();

        let again = HttpRequest { if_none_match: Some(format!("W/\"other\", {etag}")), ..HttpRequest::get("/") };
        let r = d.respond(&again).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert!(r.body().is_empty());
        assert_eq!(r.headers()[header::ETAG], etag.as_str());

        let head = HttpRequest { method: Method::HEAD, ..HttpRequest::get("/") };
        let r = d.respond(&head).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.body().is_empty());
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
    }

    #[tokio::test]
    async fn unknown_paths_are_404_and_other_methods_405() {
        let d = dashboard(store());
        let (status, ct, _) = get(&d, "/nonexistent").await;
        assert_eq!((status, ct.as_str()), (StatusCode::NOT_FOUND, "text/plain; charset=utf-8"));
        for path in ["/api", "/api/nope", "/index.html", "/api/containersx"] {
            assert_eq!(get(&d, path).await.0, StatusCode::NOT_FOUND, "{path}");
        }
        let (status, ct, r) = get(&d, "/api/nope").await;
        assert_eq!((status, ct.as_str()), (StatusCode::NOT_FOUND, "application/json; charset=utf-8"));
        assert_eq!(body_json(&r)["error"], "not found");
        let post = HttpRequest { method: Method::POST, ..HttpRequest::get("/api/containers") };
        let r = d.respond(&post).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
    }

    #[tokio::test]
    async fn api_answers_json_that_is_never_cached() {
        let d = dashboard(store());
        for path in [
            "/api/containers",
            "/api/containers/",
            "/api/issues",
            "/api/events",
            "/api/events?type=false_alarm",
            "/api/series/h1/web",
            "/api/silences",
            "/api/silences/",
        ] {
            let (status, ct, r) = get(&d, path).await;
            assert_eq!((status, ct.as_str()), (StatusCode::OK, "application/json; charset=utf-8"), "{path}");
            assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store", "{path}");
            body_json(&r);
        }
        let (_, _, r) = get(&d, "/api/containers").await;
        let v = body_json(&r);
        assert_eq!(v["containers"][1]["key"], "h1/web");
        assert_eq!(v["containers"][1]["cpu_pct"], 5.5);
        assert_eq!(v["containers"][1]["health"], "healthy");
        assert_eq!(v["hosts"][0]["alive"], true);
        assert_eq!(v["containers"][1]["silenced"]["id"], "s-1");
        assert_eq!(v["containers"][1]["breaker"]["seconds_left"], 30.0);
        assert_eq!(v["containers"][0]["silenced"], Value::Null, "the other container is not silenced");
        assert_eq!(v["containers"][0]["breaker"], Value::Null);

        let (_, _, r) = get(&d, "/api/silences").await;
        let v = body_json(&r);
        assert_eq!(v["silences"].as_array().unwrap().len(), 1, "the ended one is not shown: {v}");
        assert_eq!((&v["silences"][0]["id"], &v["silences"][0]["target_text"]), (&json!("s-1"), &json!("h1/web")));
        assert!(v["silences"][0]["seconds_left"].as_f64().unwrap() > 590.0);

        let (_, _, r) = get(&d, "/api/events?container=web&status=success").await;
        let v = body_json(&r);
        assert_eq!(v["events"].as_array().unwrap().len(), 1);
        assert_eq!(v["events"][0]["action"], "restart");

        let (_, _, r) = get(&d, "/api/series/h1/web").await;
        let v = body_json(&r);
        assert_eq!(v["samples"][0]["t"], 1, "oldest first");
        assert_eq!(v["samples"].as_array().unwrap().len(), 2);
        // Percent-encoded segments are decoded.
        let (_, _, r) = get(&d, "/api/series/h%31/w%65b").await;
        assert_eq!(body_json(&r)["key"], "h1/web");

        let (status, _, r) = get(&d, "/api/events?type=bogus").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body_json(&r)["error"].as_str().unwrap().contains("unknown type"));
        for bad in ["/api/series/h1", "/api/series/h1/a/b", "/api/series/%zz/web", "/api/series/h1/%2Fx"] {
            assert_eq!(get(&d, bad).await.0, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[tokio::test]
    async fn hostile_names_and_reasons_never_appear_as_markup() {
        let d = dashboard(store());
        for path in ["/api/containers", "/api/issues", "/api/events", "/api/events?type=<script>", "/api/silences"] {
            let (_, _, r) = get(&d, path).await;
            let body = r.body();
            assert!(!body.contains('<') && !body.contains('>'), "{path}: {body}");
            // Still the same data once parsed.
            if path == "/api/containers" {
                assert_eq!(body_json(&r)["containers"][0]["name"], HOSTILE);
                let web = &body_json(&r)["containers"][1];
                assert_eq!(web["silenced"]["reason"], HOSTILE);
                assert_eq!(web["breaker"]["reason"], format!("circuit breaker open: {HOSTILE}"));
            }
            if path == "/api/silences" {
                assert_eq!(body_json(&r)["silences"][0]["reason"], HOSTILE);
            }
            if path == "/api/events" {
                assert_eq!(body_json(&r)["events"][1]["summary"], HOSTILE);
                let diagnosis = &body_json(&r)["events"][1]["diagnosis"];
                assert_eq!((&diagnosis["cause"], &diagnosis["evidence"][0]), (&json!(HOSTILE), &json!(HOSTILE)));
            }
            if path == "/api/issues" {
                assert_eq!(body_json(&r)["issues"][0]["issues"][0], HOSTILE);
                let diagnosis = &body_json(&r)["issues"][0]["diagnosis"];
                assert_eq!(diagnosis["evidence"][0], HOSTILE, "the verdict's diagnosis, still text");
                assert_eq!(diagnosis["recommendation"], HOSTILE);
            }
        }
        // The page itself carries no data at all.
        let (_, _, r) = get(&d, "/").await;
        assert!(!r.body().contains("onerror"));
        assert_eq!(escape_json_for_html(r#"{"a":"<&>"}"#), r#"{"a":"\u003c\u0026\u003e"}"#);
    }

    #[tokio::test]
    async fn redis_down_is_503_without_details() {
        let d = dashboard(MemoryStore { down: true, ..MemoryStore::default() });
        for path in ["/api/containers", "/api/issues", "/api/events", "/api/series/h/n", "/api/silences"] {
            let (status, _, r) = get(&d, path).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert_eq!(body_json(&r)["error"], "redis unavailable");
        }
        // The page does not need Redis.
        assert_eq!(get(&d, "/").await.0, StatusCode::OK);
    }

    /// A function URL event; `iam`: its URL's AuthType is AWS_IAM (and the
    /// caller passed it); `authorization`: the caller's header.
    fn url_event(raw_path: &str, stage: &str, iam: bool, authorization: Option<&str>) -> lambda_http::Request {
        let mut event = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": raw_path, "rawQueryString": "type=false_alarm",
            "headers": {"if-none-match": "\"x\"", "host": "abc.lambda-url.us-east-1.on.aws"},
            "requestContext": {"accountId": "anonymous", "apiId": "abc", "domainName": "abc.lambda-url.us-east-1.on.aws", "domainPrefix": "abc",
                "http": {"method": "GET", "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "$default", "stage": stage, "time": "03/Nov/2025:10:30:45 +0000", "timeEpoch": 0},
            "isBase64Encoded": false
        });
        if iam {
            event["requestContext"]["accountId"] = json!("000000000000");
            event["requestContext"]["authorizer"] = json!({"iam": {"accessKey": "AKIA", "accountId": "000000000000",
                "callerId": "000000000000", "userArn": "arn:aws:iam::000000000000:root", "userId": "000000000000"}});
        }
        if let Some(value) = authorization {
            event["headers"]["authorization"] = json!(value);
        }
        lambda_http::request::from_str(&event.to_string()).expect("API Gateway v2 event")
    }

    fn lambda_event(raw_path: &str, stage: &str) -> lambda_http::Request {
        url_event(raw_path, stage, true, None)
    }

    #[tokio::test]
    async fn callers_are_authenticated_before_anything_is_read() {
        let with_token = Dashboard::new(Config { auth_token: Some("t0ken".into()), ..Config::default() }, store());
        let down = MemoryStore { down: true, ..MemoryStore::default() };
        let without = Dashboard::new(Config::default(), down);
        let status = |r: &Response<Body>| r.status();

        let r = with_token.handle(url_event("/api/containers", "$default", false, None)).await;
        assert_eq!(status(&r), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], auth::CHALLENGE);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        let r = with_token.handle(url_event("/", "$default", false, Some("Bearer wrong"))).await;
        assert_eq!(status(&r), StatusCode::UNAUTHORIZED);
        let r = with_token.handle(url_event("/api/containers", "$default", false, Some("Bearer t0ken"))).await;
        assert_eq!(status(&r), StatusCode::OK);
        let basic = "Basic aGVtb3N0YXQ6dDBrZW4="; // hemostat:t0ken
        let r = with_token.handle(url_event("/", "$default", false, Some(basic))).await;
        assert_eq!(status(&r), StatusCode::OK);

        // No token and no IAM: nobody; the store is not even asked (it is down).
        let r = without.handle(url_event("/api/containers", "$default", false, Some("Bearer t0ken"))).await;
        assert_eq!(status(&r), StatusCode::FORBIDDEN);
        let r = without.handle(url_event("/", "$default", false, None)).await;
        assert_eq!(status(&r), StatusCode::FORBIDDEN);
        // An AWS_IAM URL has authenticated the caller.
        let r = without.handle(url_event("/", "$default", true, None)).await;
        assert_eq!(status(&r), StatusCode::OK);
    }

    const APPROVAL: &str = "0123456789abcdef0123456789abcdef";
    const HOST: &str = "abc.lambda-url.us-east-1.on.aws";

    /// A POST through the function URL (AuthType NONE) with `headers` and `body`.
    fn post_event(raw_path: &str, headers: &[(&str, &str)], body: &str) -> lambda_http::Request {
        post_event_as(raw_path, headers, body, false)
    }

    /// The same, the body base64-encoded when `base64`, as a function URL
    /// may pass a body it does not take for text.
    fn post_event_as(raw_path: &str, headers: &[(&str, &str)], body: &str, base64: bool) -> lambda_http::Request {
        use base64::Engine;
        let body = if base64 { base64::engine::general_purpose::STANDARD.encode(body) } else { body.to_owned() };
        let mut event = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": raw_path, "rawQueryString": "",
            "headers": {"host": HOST, "x-forwarded-proto": "https"},
            "requestContext": {"accountId": "anonymous", "apiId": "abc", "domainName": HOST, "domainPrefix": "abc",
                "http": {"method": "POST", "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "03/Nov/2025:10:30:45 +0000", "timeEpoch": 0},
            "body": body, "isBase64Encoded": base64
        });
        for (k, v) in headers {
            event["headers"][*k] = json!(v);
        }
        lambda_http::request::from_str(&event.to_string()).expect("API Gateway v2 event")
    }

    fn with_approvals(slack: Option<&str>) -> Dashboard<MemoryStore> {
        let mut s = store();
        let approval = |id: &str, state: &str| {
            json!({"id": id, "host": "h1", "container": "web", "action": "restart",
            "state": state, "reason": HOSTILE, "by": null})
        };
        s.approvals = vec![approval(APPROVAL, "pending"), approval(&"f".repeat(32), "denied")];
        let config = Config {
            auth_token: Some("t0ken".into()),
            slack_signing_secret: slack.map(Into::into),
            ..Config::default()
        };
        Dashboard::new(config, s)
    }

    fn published(d: &Dashboard<MemoryStore>) -> Vec<ApprovalAnswer> {
        d.store.published.lock().unwrap().iter().map(|e| e.data_of(EventKind::ApprovalAnswer).unwrap()).collect()
    }

    fn text_of(r: &Response<Body>) -> String {
        match r.body() {
            Body::Text(t) => t.clone(),
            Body::Empty => String::new(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_page_answers_pending_approvals_and_nothing_else_does() {
        let d = with_approvals(None);
        let basic = "Basic YWxpY2U6dDBrZW4="; // alice:t0ken
        let page = [
            ("authorization", basic),
            ("x-hemostat-request", "1"),
            ("origin", "https://abc.lambda-url.us-east-1.on.aws"),
            ("sec-fetch-site", "same-origin"),
            ("content-type", "application/json"),
        ];
        let approve = format!("/api/approvals/{APPROVAL}/approve");

        let r = d.handle(url_event("/api/approvals", "$default", false, Some(basic))).await;
        assert_eq!(r.status(), StatusCode::OK);
        let listed: Value = serde_json::from_str(&text_of(&r)).unwrap();
        assert_eq!(listed["approvals"].as_array().unwrap().len(), 1, "pending only: {listed}");
        assert!(!text_of(&r).contains('<'), "escaped");

        // Without the token, without the header, from another origin or site: refused, nothing sent.
        let r = d.handle(post_event(&approve, &page[1..], "{}")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        for (drop, add) in [
            (Some("x-hemostat-request"), None),
            (Some("origin"), Some(("origin", "http://127.0.0.1:9999"))),
            (Some("sec-fetch-site"), Some(("sec-fetch-site", "same-site"))),
        ] {
            let mut headers: Vec<(&str, &str)> = page.iter().copied().filter(|(k, _)| Some(*k) != drop).collect();
            headers.extend(add);
            let r = d.handle(post_event(&approve, &headers, "{}")).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{headers:?}");
        }
        assert!(published(&d).is_empty());
        // GET on an answer, an unknown or answered approval, a bad body.
        assert_eq!(
            d.handle(url_event(&approve, "$default", false, Some(basic))).await.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        let unknown = format!("/api/approvals/{}/approve", "e".repeat(32));
        assert_eq!(d.handle(post_event(&unknown, &page, "")).await.status(), StatusCode::NOT_FOUND);
        let answered = format!("/api/approvals/{}/deny", "f".repeat(32));
        let r = d.handle(post_event(&answered, &page, "")).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        assert!(text_of(&r).contains("is denied"), "{}", text_of(&r));
        assert_eq!(d.handle(post_event(&approve, &page, "reason=x")).await.status(), StatusCode::BAD_REQUEST);
        assert!(published(&d).is_empty());

        // The page's own request: published, by the Basic user name.
        let r = d.handle(post_event(&approve, &page, "")).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{}", text_of(&r));
        let deny = format!("/api/approvals/{APPROVAL}/deny");
        let r = d.handle(post_event(&deny, &page, r#"{"reason": "not now"}"#)).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let sent = published(&d);
        assert_eq!(sent[0], ApprovalAnswer::from_dashboard(APPROVAL, Decision::Approve, Some("alice"), None));
        assert_eq!((sent[1].answer, sent[1].reason.as_deref()), (Decision::Deny, Some("not now")));
        assert_eq!(d.store.published.lock().unwrap()[0].agent, agent::DASHBOARD);
    }

    #[tokio::test]
    async fn slacks_path_is_unknown_until_configured_then_authenticated_by_its_signature() {
        use hemostat_protocol::approval::slack;
        let payload = json!({"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": slack::APPROVE_ACTION, "value": APPROVAL}]});
        let body =
            form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish();
        let now = (now_ms() / 1000).to_string();
        let sig = slack::sign(b"s3cret", &now, body.as_bytes());
        let signed = [
            ("x-slack-request-timestamp", now.as_str()),
            ("x-slack-signature", sig.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ];

        // Not configured: the dashboard's own auth, then an unknown path.
        let d = with_approvals(None);
        assert_eq!(d.handle(post_event("/slack/actions", &signed, &body)).await.status(), StatusCode::UNAUTHORIZED);
        let mut with_token = signed.to_vec();
        with_token.push(("authorization", "Bearer t0ken"));
        assert_eq!(d.handle(post_event("/slack/actions", &with_token, &body)).await.status(), StatusCode::NOT_FOUND);
        assert!(published(&d).is_empty());

        // Configured: the signature is the credential; the token is not needed.
        let d = with_approvals(Some("s3cret"));
        assert_eq!(
            d.handle(post_event("/slack/actions", &signed[2..], &body)).await.status(),
            StatusCode::UNAUTHORIZED
        );
        let forged = [signed[0], ("x-slack-signature", "v0=00"), signed[2]];
        assert_eq!(d.handle(post_event("/slack/actions", &forged, &body)).await.status(), StatusCode::UNAUTHORIZED);
        assert!(published(&d).is_empty());
        let r = d.handle(post_event("/slack/actions", &signed, &body)).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", text_of(&r));
        let sent = published(&d);
        assert_eq!((sent[0].id.as_str(), sent[0].by.as_str()), (APPROVAL, "slack:U1"));
        assert_eq!(sent[0].slack.as_ref().map(|s| s.body.as_str()), Some(body.as_str()));
        // The dashboard's own routes still need the token.
        assert_eq!(
            d.handle(url_event("/api/approvals", "$default", false, None)).await.status(),
            StatusCode::UNAUTHORIZED
        );
        // A form body passed base64-encoded: the bytes Slack signed are
        // verified, and passed on, either way.
        let r = d.handle(post_event_as("/slack/actions", &signed, &body, true)).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", text_of(&r));
        assert_eq!(published(&d)[1].slack.as_ref().map(|s| s.body.as_str()), Some(body.as_str()));
    }

    #[tokio::test]
    async fn lambda_requests_map_to_paths_with_and_without_a_stage() {
        let r = HttpRequest::from_lambda(&lambda_event("/api/events", "$default"));
        assert_eq!(
            (r.path.as_str(), r.query.as_str(), r.if_none_match.as_deref()),
            ("/api/events", "type=false_alarm", Some("\"x\""))
        );
        assert_eq!(HttpRequest::from_lambda(&lambda_event("/prod/api/events", "prod")).path, "/api/events");
        assert_eq!(HttpRequest::from_lambda(&lambda_event("/prod", "prod")).path, "/");
        assert_eq!(HttpRequest::from_lambda(&lambda_event("/production/x", "prod")).path, "/production/x");

        let d = dashboard(store());
        let response = d.handle(lambda_event("/api/events", "$default")).await;
        assert_eq!(response.status(), StatusCode::OK);
        match response.body() {
            Body::Text(t) => assert!(t.contains("false_alarm")),
            other => panic!("expected text, got {other:?}"),
        }
    }
}
