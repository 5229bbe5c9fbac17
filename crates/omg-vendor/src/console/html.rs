//! HTML output: escaping, the page frame, times and the form / query decoding of the console.
//!
//! Every value that comes from the database or the request (model ids, UEIDs, refusal codes,
//! filter text) is attacker-controlled text: it goes into the page only through [`esc`], which
//! escapes the five characters that matter in element content and in quoted attribute values.

use std::fmt::Write as _;

/// `s` escaped for HTML element content and double- or single-quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` percent-encoded for a URL's query component (unreserved characters kept).
pub(crate) fn url_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The pairs of an `application/x-www-form-urlencoded` text (a form body or a query string):
/// `+` is a space, `%XX` a byte; a pair or a value that is not UTF-8 once decoded is dropped.
pub(crate) fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// The first value of `name` in `pairs`.
pub(crate) fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// A UTC time as `YYYY-MM-DD HH:MM:SS`.
pub(crate) fn time(t: u64) -> String {
    let days = i64::try_from(t / 86_400).unwrap_or(i64::MAX / 2);
    let secs = t % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// An optional time, or a dash.
pub(crate) fn opt_time(t: Option<u64>) -> String {
    t.map_or_else(|| "–".to_owned(), time)
}

/// Parses a UTC time written `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM`, `YYYY-MM-DD HH:MM` or with
/// `:SS` (what a `datetime-local` input sends), or plain seconds since the Unix epoch.
pub(crate) fn parse_time(s: &str) -> Option<u64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let (date, clock) = match s.split_once(['T', ' ']) {
        Some((d, c)) => (d, Some(c)),
        None => (s, None),
    };
    let mut ymd = date.splitn(3, '-');
    let y: i64 = ymd.next()?.parse().ok()?;
    let m: u32 = ymd.next()?.parse().ok()?;
    let d: u32 = ymd.next()?.parse().ok()?;
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut hms = [0u64; 3];
    if let Some(clock) = clock {
        let parts: Vec<&str> = clock.split(':').collect();
        if !(2..=3).contains(&parts.len()) {
            return None;
        }
        for (slot, part) in hms.iter_mut().zip(&parts) {
            *slot = part.parse().ok()?;
        }
        if hms[0] > 23 || hms[1] > 59 || hms[2] > 59 {
            return None;
        }
    }
    let days = u64::try_from(days_from_civil(y, m, d)).ok()?;
    Some(days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2])
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Which navigation entry a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    /// No navigation (the login page).
    None,
    /// Models and versions.
    Models,
    /// Devices.
    Devices,
    /// The audit log.
    Audit,
}

/// A whole page: `title` (escaped here) and `body` (already HTML). With a CSRF token, the
/// navigation bar and its logout form are shown.
pub(crate) fn page(title: &str, nav: Nav, csrf: Option<&str>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · omg console</title>\
         <link rel=\"stylesheet\" href=\"/console/static/console.css\"></head><body>",
        esc(title)
    );
    if let Some(csrf) = csrf {
        out.push_str("<header><span class=\"brand\">omg vendor console</span><nav>");
        for (entry, href, label) in [
            (Nav::Models, "/console/models", "Models"),
            (Nav::Devices, "/console/devices", "Devices"),
            (Nav::Audit, "/console/audit", "Audit log"),
        ] {
            let current = if entry == nav {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(out, "<a href=\"{href}\"{current}>{label}</a>");
        }
        let _ = write!(
            out,
            "</nav><form method=\"post\" action=\"/console/logout\" class=\"logout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Log out</button></form></header>",
            esc(csrf)
        );
    } else {
        out.push_str("<header><span class=\"brand\">omg vendor console</span></header>");
    }
    let _ = writeln!(
        out,
        "<main><h1>{}</h1>{body}</main></body></html>",
        esc(title)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    #[test]
    fn forms_decode_plus_and_percent() {
        let pairs = form_pairs("a=1+2&b=%3Cx%3E&c&bad=%G1&d=%E2%82%AC");
        assert_eq!(field(&pairs, "a"), Some("1 2"));
        assert_eq!(field(&pairs, "b"), Some("<x>"));
        assert_eq!(field(&pairs, "c"), Some(""));
        assert_eq!(field(&pairs, "bad"), None);
        assert_eq!(field(&pairs, "d"), Some("€"));
        assert_eq!(url_component("a b/<é>"), "a%20b%2F%3C%C3%A9%3E");
    }

    #[test]
    fn times_round_trip() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(parse_time("2023-11-14T22:13:20"), Some(1_700_000_000));
        assert_eq!(parse_time("2023-11-14 22:13"), Some(1_699_999_980));
        assert_eq!(parse_time("2024-02-29"), Some(1_709_164_800));
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_time("2023-13-01"), None);
        assert_eq!(parse_time("yesterday"), None);
        for t in [0, 951_782_400, 4_102_444_799] {
            assert_eq!(parse_time(&time(t)), Some(t));
        }
    }
}
