//! A portal's public case form, shared by its page (`/portal/<slug>/form`)
//! and its JSON endpoint (`/api/v1/web-forms/<slug>`, which other sites
//! embed): reading the multipart body with its files, the spam defences
//! (a honeypot field, rate limits per IP address and per email address,
//! size limits) and the case.

use std::net::IpAddr;

use axum::extract::Multipart;
use axum::extract::multipart::Field;
use docket_domain::case::Case;
use docket_domain::portal::{Portal, WebFormInput};
use docket_store::NewAttachment;

use crate::api::attachments::{multipart_error, remove_files, write_upload};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

/// Files one submission may carry.
pub const MAX_FILES: usize = 5;

/// The longest text field, in bytes (the description's limit, with room).
const MAX_FIELD_BYTES: usize = 256 * 1024;

/// The hidden field people never fill in and form-filling robots do.
pub const HONEYPOT: &str = "website";

/// What became of a submission.
pub enum Received {
    Case(Box<Case>),
    /// The honeypot was filled: nothing was kept, and the sender is told
    /// nothing different from a person.
    Ignored,
}

/// The request body limit of the form's routes.
pub fn body_limit(state: &AppState) -> usize {
    let per_file = usize::try_from(state.config.max_upload_bytes).unwrap_or(usize::MAX);
    per_file.saturating_mul(MAX_FILES).saturating_add(MAX_FIELD_BYTES * 4 + 64 * 1024)
}

/// Reads and files one submission; also gives back what was typed (for a
/// form shown again with its errors). The sender's IP address is counted
/// before anything is stored; their email address once it is read.
pub async fn receive(
    state: &AppState,
    portal: &Portal,
    ip: IpAddr,
    multipart: Multipart,
) -> (WebFormInput, ApiResult<Received>) {
    if !portal.web_form.enabled {
        return (WebFormInput::default(), Err(ApiError::NotFound));
    }
    if let Err(wait) = state.web_form_ip_limiter.hit(&network_key(ip)) {
        return (WebFormInput::default(), Err(too_many(wait, "from your address")));
    }
    let mut files = Vec::new();
    let mut input = WebFormInput::default();
    let outcome = match read(state, multipart, &mut input, &mut files).await {
        Ok(true) => Ok(Received::Ignored),
        Ok(false) => match state.web_form_address_limiter.hit(&mailbox_key(&input.email)) {
            Err(wait) => Err(too_many(wait, "for this email address")),
            Ok(()) => match state.store.submit_web_form(portal, input.clone(), &files).await {
                Ok(case) => {
                    state.jobs_wakeup.notify_one();
                    return (input, Ok(Received::Case(Box::new(case))));
                }
                Err(error) => Err(error.into()),
            },
        },
        Err(error) => Err(error),
    };
    // Nothing was kept: the files go too.
    let keys: Vec<String> = files.into_iter().map(|f| f.storage_key).collect();
    remove_files(state, &keys).await;
    (input, outcome)
}

/// What the per-IP limit counts: an IPv4 address, or the /64 network of an
/// IPv6 one (a single host is usually given a whole /64 to pick from).
fn network_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// What the per-address limit counts: the address lowercased, without a
/// `+tag` (`ann+1@x` and `ann+2@x` reach the same inbox).
fn mailbox_key(email: &str) -> String {
    let email = email.trim().to_lowercase();
    match email.split_once('@') {
        Some((local, domain)) => format!("{}@{domain}", local.split('+').next().unwrap_or(local)),
        None => email,
    }
}

fn too_many(wait: u64, whose: &str) -> ApiError {
    ApiError::RateLimited {
        message: format!("too many requests {whose}; try again in {} minutes", wait.div_ceil(60)),
        retry_after_secs: wait,
    }
}

/// Reads the form's fields into `input` and its files into `files` (as
/// they are written, so the caller can remove them); `true` when the
/// honeypot was filled.
async fn read(
    state: &AppState,
    mut multipart: Multipart,
    input: &mut WebFormInput,
    files: &mut Vec<NewAttachment>,
) -> ApiResult<bool> {
    let mut spam = false;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            if field.file_name().is_none_or(str::is_empty) {
                continue;
            }
            if files.len() == MAX_FILES {
                return Err(ApiError::field("file", format!("at most {MAX_FILES} files")));
            }
            files.push(write_upload(state, field).await?);
            continue;
        }
        // Unknown fields are skipped unread; known ones are read up to
        // their limit, never whole into memory first.
        let target = match name.as_str() {
            "name" => &mut input.name,
            "email" => &mut input.email,
            "subject" => &mut input.subject,
            "description" => &mut input.description,
            HONEYPOT => {
                spam = !read_text(field, &name).await?.trim().is_empty();
                continue;
            }
            _ => continue,
        };
        *target = read_text(field, &name).await?.replace("\r\n", "\n");
    }
    Ok(spam)
}

/// A text field, refused once longer than [`MAX_FIELD_BYTES`].
async fn read_text(mut field: Field<'_>, name: &str) -> ApiResult<String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if bytes.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(ApiError::field(name, "too long"));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| ApiError::field(name, "must be text (UTF-8)"))
}

/// Whether a browser page of `origin` may post to the form: the sites the
/// portal lists, and Docket itself.
pub fn origin_allowed(state: &AppState, portal: &Portal, origin: &str) -> bool {
    let own = own_origin(&state.config.public_url);
    portal.web_form.allows_origin(origin) || own.is_some_and(|own| own.eq_ignore_ascii_case(origin))
}

/// `https://host[:port]` of a URL.
fn own_origin(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")? + 3;
    let end = url[scheme_end..].find('/').map_or(url.len(), |i| scheme_end + i);
    Some(&url[..end])
}

/// The HTML another site pastes to embed the form: it works without
/// JavaScript (the answer is then JSON), and with `docket-form.js` shows
/// the answer in place.
pub fn snippet(base: &str, slug: &str) -> String {
    format!(
        r#"<form class="docket-form" action="{base}/api/v1/web-forms/{slug}" method="post" enctype="multipart/form-data">
  <label>Your name <input name="name" required maxlength="100"></label>
  <label>Email <input name="email" type="email" required></label>
  <label>Subject <input name="subject" required maxlength="255"></label>
  <label>How can we help? <textarea name="description" required rows="6"></textarea></label>
  <label>Files <input name="file" type="file" multiple></label>
  <label class="docket-hp" aria-hidden="true" style="position:absolute;left:-5000px">Leave empty <input name="{HONEYPOT}" tabindex="-1" autocomplete="off"></label>
  <button type="submit">Send</button>
  <p class="docket-form-result" role="status"></p>
</form>
<script src="{base}/static/docket-form.js" defer></script>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_networks_and_inboxes() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        assert_eq!(network_key(a), network_key(b));
        assert_eq!(network_key("::ffff:10.0.0.1".parse().expect("ip")), "10.0.0.1");
        assert_eq!(mailbox_key(" Ann+1@Example.COM"), "ann@example.com");
        assert_eq!(mailbox_key("ann+2@example.com"), mailbox_key("ann@example.com"));
    }

    #[test]
    fn own_origin_is_scheme_and_host() {
        assert_eq!(own_origin("https://help.example.com/"), Some("https://help.example.com"));
        assert_eq!(own_origin("http://127.0.0.1:8080"), Some("http://127.0.0.1:8080"));
        assert_eq!(own_origin(""), None);
    }

    #[test]
    fn the_snippet_posts_to_the_endpoint_with_a_honeypot() {
        let html = snippet("https://help.example.com", "acme");
        assert!(html.contains(r#"action="https://help.example.com/api/v1/web-forms/acme""#));
        assert!(html.contains(r#"name="website""#));
    }
}
