//! The settings page where a user turns fediverse sharing on and off and manages followers
//! and blocks. Reached through a signed link from the platform, then a session cookie;
//! every form carries a CSRF token. Changes run in one transaction with their audit entry
//! (initiator `user`).

mod strings;
mod views;

use std::collections::HashMap;

use actix_web::{
    HttpRequest, HttpResponse,
    cookie::{Cookie, SameSite, time::Duration as CookieDuration},
    http::{StatusCode, header},
    web,
};

use self::{
    strings::{Msg, Strings},
    views::{Notice, Overview},
};
use super::{AppState, api::parse_block_target, auth};
use crate::{
    db::{
        AnyConnection, follower_list,
        follows::FollowState,
        user_blocks,
        users::{self, User},
    },
    error::Error,
    opt_in::{
        Initiator,
        controls::{self, Refused},
        lifecycle::{self, Context, Refusal},
        status,
    },
};

/// Followers and requests shown on the page at most (the API pages through the rest).
const SHOWN: i64 = 200;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings", web::get().to(index))
        .route("/settings/on", web::post().to(turn_on))
        .route("/settings/off", web::get().to(confirm_off))
        .route("/settings/off", web::post().to(turn_off))
        .route(
            "/settings/followers/remove",
            web::post().to(remove_follower),
        )
        .route("/settings/followers/approve", web::post().to(approve))
        .route("/settings/followers/refuse", web::post().to(refuse))
        .route("/settings/blocks", web::post().to(block))
        .route("/settings/blocks/remove", web::post().to(unblock));
}

fn t() -> Strings {
    Strings::for_lang(None)
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        // The link carries a signature: never leak it through Referer or caches.
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .body(body)
}

fn message(status: StatusCode, heading: Msg, text: Msg) -> HttpResponse {
    html(status, views::message(t(), heading, text))
}

fn forbidden_link() -> HttpResponse {
    message(
        StatusCode::FORBIDDEN,
        Msg::LinkInvalidHeading,
        Msg::LinkInvalid,
    )
}

fn now_secs() -> i64 {
    crate::db::now_millis() / 1000
}

fn settings_path(state: &AppState) -> String {
    auth::settings_url(&state.urls).path().to_owned()
}

fn redirect(state: &AppState, done: Option<&str>) -> HttpResponse {
    let mut location = settings_path(state);
    if let Some(done) = done {
        location.push_str("?done=");
        location.push_str(done);
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The user's session: the verified grant and the raw cookie value (the CSRF key).
struct Session {
    grant: auth::Grant,
    value: String,
}

impl Session {
    fn csrf(&self, state: &AppState) -> String {
        auth::csrf_token(&state.settings.platform.settings_link_secret, &self.value)
    }
}

fn session(req: &HttpRequest, state: &AppState) -> Option<Session> {
    let cookie = req.cookie(auth::SESSION_COOKIE)?;
    let value = cookie.value().to_owned();
    let grant = auth::verify_session(
        &state.settings.platform.settings_link_secret,
        &value,
        now_secs(),
    )?;
    Some(Session { grant, value })
}

/// Why a form post was not accepted.
#[derive(Debug, Clone, Copy)]
enum FormRefusal {
    /// No valid session cookie.
    NoSession,
    /// The CSRF token does not belong to the session.
    BadToken,
}

impl FormRefusal {
    fn response(self) -> HttpResponse {
        match self {
            Self::NoSession => forbidden_link(),
            Self::BadToken => message(
                StatusCode::FORBIDDEN,
                Msg::LinkInvalidHeading,
                Msg::FormExpired,
            ),
        }
    }
}

/// The session of a form post, when its CSRF token matches.
fn form_session(
    req: &HttpRequest,
    state: &AppState,
    form: &HashMap<String, String>,
) -> Result<Session, FormRefusal> {
    let session = session(req, state).ok_or(FormRefusal::NoSession)?;
    let token = form.get("csrf").map(String::as_str).unwrap_or_default();
    if !auth::verify_csrf(
        &state.settings.platform.settings_link_secret,
        &session.value,
        token,
    ) {
        return Err(FormRefusal::BadToken);
    }
    Ok(session)
}

fn load_overview(
    conn: &mut AnyConnection,
    user: &User,
    state: &AppState,
) -> Result<Overview, Error> {
    let status = status::load(
        conn,
        user,
        &state.settings.sharing,
        &state.urls,
        crate::db::now_millis(),
    )?;
    Ok(Overview {
        root: settings_path(state),
        status,
        followers: follower_list::page(conn, user.id, FollowState::Accepted, None, SHOWN)?,
        pending: follower_list::page(conn, user.id, FollowState::Pending, None, SHOWN)?,
        blocks: user_blocks::list(conn, user.id)?,
    })
}

async fn render(
    state: &web::Data<AppState>,
    session: &Session,
    status: StatusCode,
    notice: Option<Notice>,
) -> Result<HttpResponse, Error> {
    let uid = session.grant.user_id.clone();
    let app = state.get_ref().clone();
    let overview = state
        .db
        .run(move |c| match users::find_by_platform_id(c, &uid)? {
            Some(user) => load_overview(c, &user, &app).map(Some),
            None => Ok(None),
        })
        .await?;
    let Some(overview) = overview else {
        return Ok(message(
            StatusCode::NOT_FOUND,
            Msg::ErrorHeading,
            Msg::UnknownAccount,
        ));
    };
    Ok(html(
        status,
        views::overview(t(), &overview, &session.csrf(state), notice.as_ref()),
    ))
}

fn done_notice(done: Option<&str>) -> Option<Notice> {
    let id = match done? {
        "on" => Msg::DoneOn,
        "off" => Msg::DoneOff,
        "removed" => Msg::DoneRemoved,
        "approved" => Msg::DoneApproved,
        "refused" => Msg::DoneRefused,
        "blocked" => Msg::DoneBlocked,
        "unblocked" => Msg::DoneUnblocked,
        _ => return None,
    };
    Some(Notice::Done(t().get(id).to_owned()))
}

async fn index(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, Error> {
    let secret = state.settings.platform.settings_link_secret.clone();
    if secret.is_empty() {
        return Ok(message(
            StatusCode::SERVICE_UNAVAILABLE,
            Msg::ErrorHeading,
            Msg::Disabled,
        ));
    }
    if let (Some(user_id), Some(exp), Some(sig)) =
        (query.get("u"), query.get("exp"), query.get("sig"))
    {
        let Ok(exp) = exp.parse::<i64>() else {
            return Ok(forbidden_link());
        };
        return Ok(
            match auth::verify_link(&secret, user_id, exp, sig, now_secs()) {
                Ok(grant) => open_session(&state, &grant.user_id),
                Err(auth::LinkRejection::Expired) => message(
                    StatusCode::FORBIDDEN,
                    Msg::LinkExpiredHeading,
                    Msg::LinkExpired,
                ),
                Err(_) => forbidden_link(),
            },
        );
    }
    let Some(session) = session(&req, &state) else {
        return Ok(forbidden_link());
    };
    let notice = done_notice(query.get("done").map(String::as_str));
    render(&state, &session, StatusCode::OK, notice).await
}

/// Exchanges a verified link for a session cookie, and drops the signature from the
/// address bar by redirecting to the bare page.
fn open_session(state: &AppState, user_id: &str) -> HttpResponse {
    let secret = &state.settings.platform.settings_link_secret;
    let grant = auth::Grant {
        user_id: user_id.to_owned(),
        expires_at: now_secs() + auth::SESSION_TTL_SECS,
    };
    let cookie = Cookie::build(auth::SESSION_COOKIE, auth::session_value(secret, &grant))
        .path(settings_path(state))
        .http_only(true)
        .secure(state.urls.base().scheme() == "https")
        .same_site(SameSite::Strict)
        .max_age(CookieDuration::seconds(auth::SESSION_TTL_SECS))
        .finish();
    let mut response = redirect(state, None);
    // A cookie built here always serialises to a valid header value.
    let _ = response.add_cookie(&cookie);
    response
}

async fn with_user<T, F>(state: &AppState, session: &Session, f: F) -> Result<Option<T>, Error>
where
    F: FnOnce(&mut AnyConnection, &User, Context<'_>) -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    let settings = state.settings.clone();
    let urls = state.urls.clone();
    let uid = session.grant.user_id.clone();
    let result = state
        .db
        .write(move |conn| {
            let Some(user) = users::find_by_platform_id(conn, &uid)? else {
                return Ok(None);
            };
            let cx = Context {
                rules: &settings.sharing,
                urls: &urls,
                initiator: Initiator::User,
                now: crate::db::now_millis(),
            };
            f(conn, &user, cx).map(Some)
        })
        .await?;
    state.delivery_wakeup.notify_one();
    Ok(result)
}

async fn turn_on(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, Error> {
    let session = match form_session(&req, &state, &form) {
        Ok(s) => s,
        Err(refusal) => return Ok(refusal.response()),
    };
    let consent = form.get("consent").is_some_and(|v| v == "yes");
    let outcome = with_user(&state, &session, move |c, u, cx| {
        lifecycle::turn_on(c, u, consent, cx).map(|r| r.map(|_| ()))
    })
    .await?;
    match outcome {
        Some(Ok(())) => Ok(redirect(&state, Some("on"))),
        Some(Err(Refusal::ConsentRequired)) => {
            render(
                &state,
                &session,
                StatusCode::CONFLICT,
                Some(Notice::ConsentMissing),
            )
            .await
        }
        Some(Err(refusal)) => {
            render(
                &state,
                &session,
                StatusCode::CONFLICT,
                Some(Notice::Refused(refusal.message())),
            )
            .await
        }
        None => Ok(message(
            StatusCode::NOT_FOUND,
            Msg::ErrorHeading,
            Msg::UnknownAccount,
        )),
    }
}

async fn confirm_off(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match session(&req, &state) {
        Some(session) => html(
            StatusCode::OK,
            views::confirm_off(
                t(),
                &settings_path(&state),
                state.settings.sharing.cooldown_days,
                &session.csrf(&state),
            ),
        ),
        None => forbidden_link(),
    }
}

async fn turn_off(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, Error> {
    let session = match form_session(&req, &state, &form) {
        Ok(s) => s,
        Err(refusal) => return Ok(refusal.response()),
    };
    with_user(&state, &session, |c, u, cx| {
        lifecycle::turn_off(c, u, cx).map(|_| ())
    })
    .await?;
    Ok(redirect(&state, Some("off")))
}

async fn after_control(
    state: &web::Data<AppState>,
    session: &Session,
    outcome: Option<Result<(), Refused>>,
    done: &str,
) -> Result<HttpResponse, Error> {
    match outcome {
        Some(Ok(())) => Ok(redirect(state, Some(done))),
        Some(Err(refused)) => {
            render(
                state,
                session,
                StatusCode::CONFLICT,
                Some(Notice::Refused(refused.message())),
            )
            .await
        }
        None => Ok(message(
            StatusCode::NOT_FOUND,
            Msg::ErrorHeading,
            Msg::UnknownAccount,
        )),
    }
}

async fn follower_action(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<HashMap<String, String>>,
    action: FollowerAction,
) -> Result<HttpResponse, Error> {
    let session = match form_session(&req, &state, &form) {
        Ok(s) => s,
        Err(refusal) => return Ok(refusal.response()),
    };
    let actor = form.get("actor").cloned().unwrap_or_default();
    let outcome = with_user(&state, &session, move |c, u, cx| match action {
        FollowerAction::Remove => controls::remove_follower(c, u, &actor, cx),
        FollowerAction::Approve => controls::answer_request(c, u, &actor, true, cx),
        FollowerAction::Refuse => controls::answer_request(c, u, &actor, false, cx),
    })
    .await?;
    let done = match action {
        FollowerAction::Remove => "removed",
        FollowerAction::Approve => "approved",
        FollowerAction::Refuse => "refused",
    };
    after_control(&state, &session, outcome, done).await
}

#[derive(Debug, Clone, Copy)]
enum FollowerAction {
    Remove,
    Approve,
    Refuse,
}

async fn remove_follower(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, Error> {
    follower_action(req, state, form, FollowerAction::Remove).await
}

async fn approve(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, Error> {
    follower_action(req, state, form, FollowerAction::Approve).await
}

async fn refuse(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, Error> {
    follower_action(req, state, form, FollowerAction::Refuse).await
}

/// A block target from the page's single field: a URL is an account, anything else a
/// server name; the unblock buttons send the kind explicitly.
fn form_target(
    form: &HashMap<String, String>,
    state: &AppState,
) -> Result<user_blocks::BlockTarget, String> {
    let (actor, domain) = match form.get("target").map(|s| s.trim()) {
        Some(target) if target.contains("://") => (Some(target), None),
        Some(target) => (None, Some(target)),
        None => (
            form.get("actor").map(String::as_str),
            form.get("domain").map(String::as_str),
        ),
    };
    parse_block_target(actor, domain, &state.urls).map_err(|(_, message)| message.to_owned())
}

async fn block(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, Error> {
    let session = match form_session(&req, &state, &form) {
        Ok(s) => s,
        Err(refusal) => return Ok(refusal.response()),
    };
    let target = match form_target(&form, &state) {
        Ok(target) => target,
        Err(message) => {
            return render(
                &state,
                &session,
                StatusCode::BAD_REQUEST,
                Some(Notice::Refused(message)),
            )
            .await;
        }
    };
    let outcome = with_user(&state, &session, move |c, u, cx| {
        controls::block(c, u, &target, cx).map(|_| Ok(()))
    })
    .await?;
    after_control(&state, &session, outcome, "blocked").await
}

async fn unblock(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, Error> {
    let session = match form_session(&req, &state, &form) {
        Ok(s) => s,
        Err(refusal) => return Ok(refusal.response()),
    };
    let target = match form_target(&form, &state) {
        Ok(target) => target,
        Err(message) => {
            return render(
                &state,
                &session,
                StatusCode::BAD_REQUEST,
                Some(Notice::Refused(message)),
            )
            .await;
        }
    };
    let outcome = with_user(&state, &session, move |c, u, cx| {
        controls::unblock(c, u, &target, cx)
    })
    .await?;
    after_control(&state, &session, outcome, "unblocked").await
}
