//! Embeds the static files: every file under `assets/` (the console and the storefront page)
//! and the browser package built by `scripts/build-browser.sh` into `target/browser-pkg/`
//! (served as `/shop/pkg/...`). Writes `$OUT_DIR/assets.rs`: one [`Asset`] per file with its
//! bytes (`include_bytes!`), content type, strong ETag (SHA-256 of the bytes) and content hash.
//!
//! HTML files may name another asset of their own section as `{{asset NAME}}`; that becomes
//! `/<section>/_/<hash of NAME>/NAME`, a content-addressed URL the component serves as
//! immutable, so a page always loads the scripts and styles of its own build.
//!
//! Fails the component's build (wasm32), saying what to run, when the browser package is
//! missing.

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The browser package's files the storefront page loads.
const PKG_FILES: [&str; 2] = ["oms_browser.js", "oms_browser_bg.wasm"];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let pkg = env::var_os("OMS_BROWSER_PKG")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../target/browser-pkg"));
    println!("cargo:rerun-if-env-changed=OMS_BROWSER_PKG");
    println!("cargo:rerun-if-changed=assets");

    // url path → file on disk
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    walk(&manifest.join("assets"), "", &mut files);
    for name in PKG_FILES {
        let path = pkg.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        if !path.is_file() {
            let message = format!(
                "the browser package is missing: {} not found. The storefront page (/shop) \
                 embeds it. Build it first with `bash scripts/build-browser.sh` \
                 (scripts/build-wasm.sh runs it before the guests), or point OMS_BROWSER_PKG at \
                 a folder holding {}.",
                path.display(),
                PKG_FILES.join(" and ")
            );
            // The component itself is never built without it; a native build (the unit tests
            // of the workspace) gets an empty placeholder and a warning, so that the rest of the
            // workspace still builds before the package does.
            if env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
                panic!("\n\nconsole: {message}\n\n");
            }
            println!("cargo:warning=console: {message} (native build: an empty placeholder)");
            let placeholder = out.join(name);
            fs::write(&placeholder, b"").unwrap();
            files.insert(format!("/shop/pkg/{name}"), placeholder);
            continue;
        }
        files.insert(format!("/shop/pkg/{name}"), path);
    }

    let hashes: BTreeMap<&str, String> = files
        .iter()
        .map(|(url, path)| {
            let bytes = fs::read(path).unwrap();
            (url.as_str(), hex::encode(Sha256::digest(&bytes)))
        })
        .collect();

    let mut table = String::from("&[\n");
    for (url, path) in &files {
        let mut source = path.clone();
        let mut hash = hashes[url.as_str()].clone();
        if url.ends_with(".html") {
            let section = url.split('/').nth(1).unwrap();
            let text = fs::read_to_string(path).unwrap();
            let rewritten = rewrite(&text, section, &hashes, url);
            source = out.join(url.trim_start_matches('/').replace('/', "__"));
            hash = hex::encode(Sha256::digest(rewritten.as_bytes()));
            fs::write(&source, rewritten).unwrap();
        }
        table += &format!(
            "    Asset {{ path: {url:?}, body: include_bytes!({src:?}), content_type: {ct:?}, hash: {h:?} }},\n",
            src = source.display().to_string(),
            ct = content_type(url),
            h = &hash[..32],
        );
    }
    table += "]";
    fs::write(out.join("assets.rs"), table).unwrap();
}

/// Every file under `dir`, keyed by its URL path (`/console/app.js`).
fn walk(dir: &Path, prefix: &str, files: &mut BTreeMap<String, PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let url = format!("{prefix}/{name}");
        if path.is_dir() {
            walk(&path, &url, files);
        } else {
            files.insert(url, path);
        }
    }
}

/// `{{asset NAME}}` → the content-addressed URL of `/<section>/NAME`.
fn rewrite(text: &str, section: &str, hashes: &BTreeMap<&str, String>, page: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{asset ") {
        out += &rest[..start];
        let after = &rest[start + 8..];
        let end = after
            .find("}}")
            .unwrap_or_else(|| panic!("{page}: unclosed {{{{asset"));
        let name = after[..end].trim();
        let url = format!("/{section}/{name}");
        let hash = hashes
            .get(url.as_str())
            .unwrap_or_else(|| panic!("{page}: {{{{asset {name}}}}}: no file {url}"));
        out += &format!("/{section}/_/{}/{name}", &hash[..32]);
        rest = &after[end + 2..];
    }
    out + rest
}

fn content_type(url: &str) -> &'static str {
    match url.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        other => panic!("{url}: no content type known for .{other}"),
    }
}
