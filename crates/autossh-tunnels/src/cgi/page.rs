//! The app's page, and the small one that fetches a session's SynoToken.

/// The app: list, form, key (one file, no external script or style).
pub const PAGE: &str = include_str!("page.html");

/// The page without a token: it asks DSM for the session's SynoToken
/// (same origin) and loads again with it.
pub const BOOTSTRAP: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Tunnels</title></head>
<body><p id="m">Opening Tunnels...</p>
<script>
fetch('/webman/login.cgi', {credentials: 'same-origin'}).then(function (r) { return r.json(); }).then(function (j) {
  if (!j.SynoToken) { throw new Error('no token'); }
  location.replace(location.pathname + '?SynoToken=' + encodeURIComponent(j.SynoToken));
}).catch(function () {
  document.getElementById('m').textContent = 'Log in to DSM first, then open Tunnels from its main menu.';
});
</script></body></html>
"#;
