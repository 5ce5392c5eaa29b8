//! Templates, Markdown and error pages.
//!
//! Templates are compiled into the binary so `docket` runs from any
//! directory; `DOCKET_UI_DIR=ui/templates` reads them from disk instead
//! (edit and reload while developing). Autoescaping is on for every
//! template; user Markdown is rendered and then sanitised with ammonia.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use crate::app::AppState;
use crate::error::error_chain;

/// Every template, embedded. Keep in step with `ui/templates`.
const EMBEDDED: &[(&str, &str)] = &[
    ("base.html", include_str!("../../../../ui/templates/base.html")),
    ("error.html", include_str!("../../../../ui/templates/error.html")),
    ("login.html", include_str!("../../../../ui/templates/login.html")),
    ("password.html", include_str!("../../../../ui/templates/password.html")),
    ("macros.html", include_str!("../../../../ui/templates/macros.html")),
    ("notifications.html", include_str!("../../../../ui/templates/notifications.html")),
    ("preferences.html", include_str!("../../../../ui/templates/preferences.html")),
    ("cases/list.html", include_str!("../../../../ui/templates/cases/list.html")),
    ("cases/form.html", include_str!("../../../../ui/templates/cases/form.html")),
    ("cases/show.html", include_str!("../../../../ui/templates/cases/show.html")),
    ("cases/table.html", include_str!("../../../../ui/templates/cases/table.html")),
    ("cases/note.html", include_str!("../../../../ui/templates/cases/note.html")),
    ("accounts/list.html", include_str!("../../../../ui/templates/accounts/list.html")),
    ("accounts/show.html", include_str!("../../../../ui/templates/accounts/show.html")),
    ("contacts/list.html", include_str!("../../../../ui/templates/contacts/list.html")),
    ("contacts/show.html", include_str!("../../../../ui/templates/contacts/show.html")),
    ("admin/nav.html", include_str!("../../../../ui/templates/admin/nav.html")),
    ("admin/users.html", include_str!("../../../../ui/templates/admin/users.html")),
    ("admin/teams.html", include_str!("../../../../ui/templates/admin/teams.html")),
    ("admin/team_form.html", include_str!("../../../../ui/templates/admin/team_form.html")),
    ("admin/roles.html", include_str!("../../../../ui/templates/admin/roles.html")),
    ("admin/role_form.html", include_str!("../../../../ui/templates/admin/role_form.html")),
    ("portal/base.html", include_str!("../../../../ui/templates/portal/base.html")),
    ("portal/login.html", include_str!("../../../../ui/templates/portal/login.html")),
    ("portal/web_form.html", include_str!("../../../../ui/templates/portal/web_form.html")),
    ("portal/web_form_done.html", include_str!("../../../../ui/templates/portal/web_form_done.html")),
    ("portal/password_reset.html", include_str!("../../../../ui/templates/portal/password_reset.html")),
    ("portal/password.html", include_str!("../../../../ui/templates/portal/password.html")),
    ("portal/cases.html", include_str!("../../../../ui/templates/portal/cases.html")),
    ("portal/case_form.html", include_str!("../../../../ui/templates/portal/case_form.html")),
    ("portal/case.html", include_str!("../../../../ui/templates/portal/case.html")),
    ("portal/notifications.html", include_str!("../../../../ui/templates/portal/notifications.html")),
    ("portal/kb.html", include_str!("../../../../ui/templates/portal/kb.html")),
    ("portal/article.html", include_str!("../../../../ui/templates/portal/article.html")),
    ("kb/list.html", include_str!("../../../../ui/templates/kb/list.html")),
    ("kb/show.html", include_str!("../../../../ui/templates/kb/show.html")),
    ("kb/form.html", include_str!("../../../../ui/templates/kb/form.html")),
    ("kb/categories.html", include_str!("../../../../ui/templates/kb/categories.html")),
    ("admin/portals.html", include_str!("../../../../ui/templates/admin/portals.html")),
    ("admin/portal_form.html", include_str!("../../../../ui/templates/admin/portal_form.html")),
    ("admin/portal_role_form.html", include_str!("../../../../ui/templates/admin/portal_role_form.html")),
    ("admin/api_keys.html", include_str!("../../../../ui/templates/admin/api_keys.html")),
    ("admin/settings.html", include_str!("../../../../ui/templates/admin/settings.html")),
    ("admin/email.html", include_str!("../../../../ui/templates/admin/email.html")),
    ("admin/jobs.html", include_str!("../../../../ui/templates/admin/jobs.html")),
    ("admin/user_form.html", include_str!("../../../../ui/templates/admin/user_form.html")),
    ("admin/rules.html", include_str!("../../../../ui/templates/admin/rules.html")),
    ("admin/rule_form.html", include_str!("../../../../ui/templates/admin/rule_form.html")),
    ("admin/rule_runs.html", include_str!("../../../../ui/templates/admin/rule_runs.html")),
    ("admin/mailboxes.html", include_str!("../../../../ui/templates/admin/mailboxes.html")),
    ("admin/mailbox_form.html", include_str!("../../../../ui/templates/admin/mailbox_form.html")),
    ("admin/plugins.html", include_str!("../../../../ui/templates/admin/plugins.html")),
    ("admin/plugin.html", include_str!("../../../../ui/templates/admin/plugin.html")),
    ("admin/rule_runs_table.html", include_str!("../../../../ui/templates/admin/rule_runs_table.html")),
];

pub struct Templates {
    tera: tera::Tera,
    /// Reload from this folder on every render (development).
    dev_dir: Option<String>,
}

impl Templates {
    pub fn load() -> anyhow::Result<Templates> {
        let dev_dir = std::env::var("DOCKET_UI_DIR").ok().filter(|d| !d.is_empty());
        let tera = match &dev_dir {
            Some(dir) => from_dir(dir)?,
            None => embedded()?,
        };
        Ok(Templates { tera, dev_dir })
    }

    pub fn render(&self, name: &str, context: &tera::Context) -> anyhow::Result<String> {
        let rendered = match &self.dev_dir {
            Some(dir) => from_dir(dir)?.render(name, context),
            None => self.tera.render(name, context),
        };
        rendered.map_err(|e| anyhow::anyhow!("rendering {name}: {}", error_chain(&e)))
    }
}

fn embedded() -> anyhow::Result<tera::Tera> {
    let mut tera = tera::Tera::default();
    tera.add_raw_templates(EMBEDDED.iter().copied()).map_err(|e| anyhow::anyhow!("templates: {}", error_chain(&e)))?;
    tera.autoescape_on(vec![".html"]);
    Ok(tera)
}

fn from_dir(dir: &str) -> anyhow::Result<tera::Tera> {
    let mut tera = tera::Tera::new(&format!("{dir}/**/*.html")).map_err(|e| anyhow::anyhow!("{}", error_chain(&e)))?;
    tera.autoescape_on(vec![".html"]);
    Ok(tera)
}

/// Renders user Markdown to HTML that is safe to embed: ammonia removes
/// scripts, event handlers, `javascript:` links and everything else not on
/// its allow-list.
pub fn markdown(text: &str) -> String {
    let parser = pulldown_cmark::Parser::new_ext(text, pulldown_cmark::Options::ENABLE_TABLES);
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        // Images only from Docket itself (attachments): a remote image in
        // a customer's email would tell its sender when an agent read it.
        .attribute_filter(|element, attribute, value| {
            let same_site = value.starts_with('/') && !value.starts_with("//");
            if element == "img" && attribute == "src" && !same_site { None } else { Some(value.into()) }
        })
        .clean(&html)
        .to_string()
}

/// Renders a page; a template error is logged and becomes the 500 page.
pub fn page(state: &AppState, template: &str, context: &tera::Context) -> Response {
    match state.templates.render(template, context) {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "template failed");
            UiError::Internal.into_response()
        }
    }
}

/// Renders a page answered with `status` (a form with errors: 422); a
/// template error still gives the 500 page, never a 422 with its body.
pub fn page_with_status(state: &AppState, template: &str, context: &tera::Context, status: StatusCode) -> Response {
    let mut response = page(state, template, context);
    if response.status() == StatusCode::OK {
        *response.status_mut() = status;
    }
    response
}

/// An error a UI handler returns; [`render_error_pages`] turns it into a
/// page in the site's layout.
#[derive(Debug, Clone)]
pub enum UiError {
    NotFound,
    Forbidden(String),
    PayloadTooLarge(String),
    Internal,
}

#[derive(Clone, Serialize)]
struct ErrorPage {
    status: u16,
    title: &'static str,
    message: String,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let page = match self {
            UiError::NotFound => ErrorPage {
                status: 404,
                title: "Page not found",
                message: "There is nothing here, or you may not see it.".into(),
            },
            UiError::Forbidden(message) => ErrorPage { status: 403, title: "Not allowed", message },
            UiError::PayloadTooLarge(message) => ErrorPage { status: 413, title: "File too large", message },
            UiError::Internal => ErrorPage {
                status: 500,
                title: "Something went wrong",
                message: "The error was logged. Try again, or tell your administrator.".into(),
            },
        };
        let status = StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = status.into_response();
        response.extensions_mut().insert(page);
        response
    }
}

impl From<docket_store::StoreError> for UiError {
    fn from(error: docket_store::StoreError) -> Self {
        match error {
            docket_store::StoreError::NotFound => UiError::NotFound,
            docket_store::StoreError::Forbidden(message) => UiError::Forbidden(message),
            // Pages that can show a rule's refusal in place handle it first.
            docket_store::StoreError::Rejected { rule, message } => {
                UiError::Forbidden(format!("{message} (rule “{rule}”)"))
            }
            other => {
                tracing::error!(error = %other, "store error in the UI");
                UiError::Internal
            }
        }
    }
}

/// API-layer errors met by UI handlers (shared upload code).
impl From<crate::error::ApiError> for UiError {
    fn from(error: crate::error::ApiError) -> Self {
        use crate::error::ApiError;
        match error {
            ApiError::PayloadTooLarge(message) => UiError::PayloadTooLarge(message),
            ApiError::NotFound => UiError::NotFound,
            ApiError::Internal(cause) => UiError::from(cause),
            other => UiError::Forbidden(other.to_string()),
        }
    }
}

impl From<anyhow::Error> for UiError {
    fn from(error: anyhow::Error) -> Self {
        tracing::error!(error = %error, "error in the UI");
        UiError::Internal
    }
}

/// Middleware: renders [`UiError`]s (and unmatched UI paths) as pages.
pub async fn render_error_pages(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // A portal's error pages lead back into that portal, not to the agents'.
    let home = match super::portal_session::slug_in_path(request.uri().path()) {
        Some(slug) => format!("/portal/{slug}/"),
        None => "/".to_string(),
    };
    let response = next.run(request).await;
    let Some(page) = response.extensions().get::<ErrorPage>().cloned() else {
        return response;
    };
    let mut context = tera::Context::new();
    context.insert("error", &page);
    context.insert("home", &home);
    let html = state.templates.render("error.html", &context).unwrap_or_else(|error| {
        tracing::error!(%error, "error template failed");
        format!("<!doctype html><title>{}</title><h1>{}</h1>", page.status, page.title)
    });
    (response.status(), Html(html)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_keeps_formatting_and_drops_scripts() {
        let html = markdown("**bold** <script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)>");
        assert!(html.contains("<strong>bold</strong>"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("javascript:"));
        assert!(!html.contains("onerror"));
        let pixel =
            markdown("![](https://tracker.example/p.gif) ![](//tracker.example/q.gif) ![ok](/api/v1/attachments/1)");
        assert!(!pixel.contains("tracker.example"), "{pixel}");
        assert!(pixel.contains("src=\"/api/v1/attachments/1\""), "{pixel}");
    }

    #[test]
    fn every_embedded_template_compiles() {
        embedded().expect("templates compile");
    }
}
