//! The pages of a user's own account (password, second factor, sessions), the second step of
//! signing in, and the owners' user management. `maud` escapes everything they show.

use chrono::{DateTime, Utc};
use keyturn_app::{ConsoleSession, Page, SecondFactor, SessionView, UserRow};
use keyturn_core::{ConsoleUser, Product, Role};
use maud::{html, Markup};

use super::pages::layout;

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// What a redirect after a change says happened (never text from the request itself).
fn done_message(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "password" => "Password changed. Every other session of yours has ended.",
        "enrolling" => "Scan the code with your authenticator app, then type the code it shows.",
        "totp-on" => "Two-step sign-in is on. From now on, signing in asks for a code.",
        "totp-off" => "Two-step sign-in is off.",
        "cancelled" => "Set-up cancelled.",
        "ended" => "The session has ended.",
        "others-ended" => "Every other session has ended.",
        "created" => "User created.",
        "changed" => "User changed.",
        "disabled" => "User disabled; their sessions have ended.",
        "enabled" => "User enabled.",
        "reset" => "The user's two-step sign-in was removed.",
        _ => return None,
    })
}

fn notice(done: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = done_message(done) {
            p.notice role="status" { (m) }
        }
    }
}

/// A form's refusal, said above it.
fn refusal(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p.error role="alert" { (m) }
        }
    }
}

fn code_input(id: &str) -> Markup {
    html! {
        label for=(id) { "Six-digit code from your authenticator app" }
        input id=(id) name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
            pattern="[0-9 ]{6,7}" maxlength="7" required;
    }
}

/// The second step of signing in.
pub fn login_code(csrf: &str, message: Option<&str>) -> Markup {
    layout(
        "Enter your code",
        None,
        html! {
            h1 { "Enter your code" }
            (refusal(message))
            form.card method="post" action="/admin/login/code" {
                input type="hidden" name="csrf" value=(csrf);
                (code_input("code"))
                button type="submit" { "Verify" }
            }
            p { a href="/admin/login" { "Start again" } }
        },
    )
}

/// A QR code as SVG: one path of dark modules on a light square with a quiet zone.
fn qr(text: &str) -> Markup {
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return html! {};
    };
    let width = code.width();
    let mut d = String::new();
    for (i, color) in code.to_colors().iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (x, y) = (i % width + 4, i / width + 4);
            d.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    let size = width + 8;
    html! {
        svg.qr role="img" aria-label="QR code of the set-up link, for an authenticator app"
            viewBox={ "0 0 " (size) " " (size) } shape-rendering="crispEdges" {
            rect.qr-light x="0" y="0" width=(size) height=(size) {}
            path.qr-dark d=(d) {}
        }
    }
}

/// The secret in groups of four, as apps ask for it to be typed.
fn grouped(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Refusals shown on the account page, by the form they belong to.
#[derive(Debug, Default, Clone, Copy)]
pub struct AccountErrors<'a> {
    pub password: Option<&'a str>,
    pub totp: Option<&'a str>,
}

pub fn account(
    session: &ConsoleSession,
    factor: &SecondFactor,
    done: Option<&str>,
    errors: AccountErrors<'_>,
) -> Markup {
    let user = &session.user;
    layout(
        "Your account",
        Some(session),
        html! {
            (notice(done))
            h1 { "Your account" }
            dl.facts {
                dt { "Email" } dd { (user.email) }
                dt { "Role" } dd { (user.role.as_str()) }
                dt { "Products" } dd { @match user.product_id { Some(p) => { "product " (p) " only" }, None => "all" } }
            }
            p { a href="/admin/account/sessions" { "Your sessions" } }

            section aria-labelledby="password-h" {
                h2 id="password-h" { "Password" }
                (refusal(errors.password))
                form.card method="post" action="/admin/account/password" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    label for="current" { "Current password" }
                    input id="current" name="current" type="password" autocomplete="current-password" required;
                    label for="new" { "New password (at least 12 characters)" }
                    input id="new" name="new" type="password" autocomplete="new-password" minlength="12" required;
                    label for="again" { "New password again" }
                    input id="again" name="again" type="password" autocomplete="new-password" minlength="12" required;
                    button type="submit" { "Change password" }
                    p.hint { "Every other session of yours ends when the password changes." }
                }
            }

            section aria-labelledby="totp-h" {
                h2 id="totp-h" { "Two-step sign-in" }
                (refusal(errors.totp))
                @if factor.enabled {
                    p { "On: signing in asks for a code from your authenticator app after the password." }
                    form.card method="post" action="/admin/account/totp/disable" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        (code_input("off-code"))
                        button.danger type="submit" { "Turn off two-step sign-in" }
                    }
                } @else if let Some(e) = &factor.enrolling {
                    ol.steps {
                        li { "Scan this code with an authenticator app, or type the key into it." }
                        li { "Type the six-digit code the app shows to turn two-step sign-in on." }
                    }
                    div.enrol {
                        (qr(&e.uri))
                        dl.facts {
                            dt { "Key" } dd { code.secret { (grouped(&e.secret)) } }
                            dt { "Set-up link" } dd { code { (e.uri) } }
                        }
                    }
                    form.card method="post" action="/admin/account/totp/confirm" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        (code_input("on-code"))
                        button type="submit" { "Turn on two-step sign-in" }
                    }
                    form method="post" action="/admin/account/totp/cancel" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button.secondary type="submit" { "Cancel set-up" }
                    }
                } @else {
                    p { "Off. With it on, signing in also asks for a code from an authenticator app on your phone." }
                    form method="post" action="/admin/account/totp/begin" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" { "Set up two-step sign-in" }
                    }
                }
            }
        },
    )
}

pub fn sessions(session: &ConsoleSession, list: &[SessionView], done: Option<&str>) -> Markup {
    let others = list.iter().filter(|s| !s.current).count();
    layout(
        "Your sessions",
        Some(session),
        html! {
            (notice(done))
            h1 { "Your sessions" }
            p { "Where you are signed in. End a session you do not recognise, then change your password." }
            div.scroll {
                table.stack {
                    thead { tr {
                        th scope="col" { "Signed in" } th scope="col" { "Last used" }
                        th scope="col" { "Address" } th scope="col" { "Browser" }
                        th scope="col" { span.sr { "Action" } }
                    } }
                    tbody {
                        @for s in list {
                            tr {
                                td data-label="Signed in" { (when(s.info.created)) }
                                td data-label="Last used" { (when(s.info.last_seen)) }
                                td data-label="Address" { (s.info.ip.as_deref().unwrap_or("unknown")) }
                                td data-label="Browser" { (s.info.user_agent.as_deref().unwrap_or("unknown")) }
                                td.action {
                                    @if s.current {
                                        strong { "This session" }
                                    } @else {
                                        form method="post" action="/admin/account/sessions/end" {
                                            input type="hidden" name="csrf" value=(session.csrf);
                                            input type="hidden" name="session" value=(s.info.id_hash);
                                            button.danger type="submit" aria-label={ "End the session signed in " (when(s.info.created)) } { "End" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if others > 0 {
                form method="post" action="/admin/account/sessions/end-others" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    button.danger type="submit" { "End every other session (" (others) ")" }
                }
            }
            p { a href="/admin/account" { "Back to your account" } }
        },
    )
}

fn role_select(id: &str, current: Role) -> Markup {
    html! {
        label for=(id) { "Role" }
        select id=(id) name="role" {
            @for r in Role::ALL {
                option value=(r.as_str()) selected[r == current] { (r.as_str()) }
            }
        }
    }
}

fn product_select(id: &str, products: &[Product], current: Option<i64>) -> Markup {
    html! {
        label for=(id) { "Products" }
        select id=(id) name="product" {
            option value="" selected[current.is_none()] { "All products" }
            @for p in products {
                option value=(p.id) selected[current == Some(p.id)] { (p.name) " only (" (p.id) ")" }
            }
        }
    }
}

/// Recent entries of the console's audit log: (at, actor, action, details).
pub type AuditRows = Vec<(DateTime<Utc>, String, String, String)>;

pub fn users(
    session: &ConsoleSession,
    page: &Page<UserRow>,
    products: &[Product],
    audit: &AuditRows,
    done: Option<&str>,
    error: Option<&str>,
) -> Markup {
    layout(
        "Users",
        Some(session),
        html! {
            (notice(done))
            h1 { "Console users" }
            div.scroll {
                table.stack {
                    thead { tr {
                        th scope="col" { "Email" } th scope="col" { "Role" } th scope="col" { "Products" }
                        th scope="col" { "Two-step" } th scope="col" { "State" } th scope="col" { "Created" }
                    } }
                    tbody {
                        @for r in &page.data {
                            tr {
                                td data-label="Email" { a href={ "/admin/users/" (r.user.id) } { (r.user.email) } }
                                td data-label="Role" { (r.user.role.as_str()) }
                                td data-label="Products" { @match r.user.product_id { Some(p) => { "product " (p) }, None => "all" } }
                                td data-label="Two-step" { @if r.second_factor { "on" } @else { "off" } }
                                td data-label="State" { @if r.user.disabled { "disabled" } @else { "active" } }
                                td data-label="Created" { (when(r.user.created)) }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &page.next_cursor {
                p { a href={ "/admin/users?after=" (next) } { "Next page" } }
            }
            section aria-labelledby="add-h" {
                h2 id="add-h" { "Add a user" }
                (refusal(error))
                form.card method="post" action="/admin/users" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    label for="email" { "Email" }
                    input id="email" name="email" type="email" autocomplete="off" required;
                    (role_select("role", Role::Support))
                    (product_select("product", products, None))
                    label for="password" { "Initial password (at least 12 characters; tell it to them in person)" }
                    input id="password" name="password" type="password" autocomplete="new-password" minlength="12" required;
                    button type="submit" { "Add user" }
                }
            }
            section aria-labelledby="log-h" {
                h2 id="log-h" { "Recent console activity" }
                ol.timeline {
                    @for (at, actor, action, details) in audit {
                        li {
                            time datetime=(at.to_rfc3339()) { (when(*at)) }
                            " " strong { (action) } " by " span.actor { (actor) }
                            @if details != "{}" { pre { code { (details) } } }
                        }
                    }
                }
            }
        },
    )
}

pub fn user(
    session: &ConsoleSession,
    user: &ConsoleUser,
    products: &[Product],
    done: Option<&str>,
) -> Markup {
    let own = user.id == session.user.id;
    let action = |what: &str| format!("/admin/users/{}/{what}", user.id);
    layout(
        &format!("User {}", user.email),
        Some(session),
        html! {
            (notice(done))
            h1 { "User " (user.email) }
            dl.facts {
                dt { "Role" } dd { (user.role.as_str()) }
                dt { "Products" } dd { @match user.product_id { Some(p) => { "product " (p) " only" }, None => "all" } }
                dt { "State" } dd { @if user.disabled { "disabled" } @else { "active" } }
                dt { "Created" } dd { (when(user.created)) }
            }
            @if own {
                p { "This is you: another owner changes your role or access. Your password, two-step sign-in and sessions are on " a href="/admin/account" { "your account" } "." }
            } @else {
                section aria-labelledby="access-h" {
                    h2 id="access-h" { "Access" }
                    form.card method="post" action=(action("access")) {
                        input type="hidden" name="csrf" value=(session.csrf);
                        (role_select("role", user.role))
                        (product_select("product", products, user.product_id))
                        button type="submit" { "Save access" }
                    }
                }
                section aria-labelledby="state-h" {
                    h2 id="state-h" { @if user.disabled { "Enable" } @else { "Disable" } }
                    form method="post" action=(action(if user.disabled { "enable" } else { "disable" })) {
                        input type="hidden" name="csrf" value=(session.csrf);
                        @if user.disabled {
                            button type="submit" { "Enable user" }
                        } @else {
                            p { "A disabled user cannot sign in, and every session of theirs ends at once." }
                            button.danger type="submit" { "Disable user" }
                        }
                    }
                    h2 id="reset-h" { "Two-step sign-in" }
                    form method="post" action=(action("reset-second-factor")) {
                        input type="hidden" name="csrf" value=(session.csrf);
                        p { "For a user who lost their phone: they sign in with the password alone and may set it up again." }
                        button.danger type="submit" { "Remove their two-step sign-in" }
                    }
                }
            }
            p { a href="/admin/users" { "All users" } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_show_in_groups_of_four() {
        assert_eq!(grouped("ABCDEFGHIJ"), "ABCD EFGH IJ");
    }

    #[test]
    fn qr_codes_are_svg_paths() {
        let svg = qr("otpauth://totp/Keyturn:a%40b.c?secret=ABCD&issuer=Keyturn").into_string();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("M4 4h1v1h-1z"), "the finder pattern's corner");
        assert!(!svg.contains("style"));
        // Closed explicitly: in HTML, an SVG element left open swallows what follows.
        assert!(
            svg.contains("></rect>") && svg.contains("></path>"),
            "{svg}"
        );
    }
}
