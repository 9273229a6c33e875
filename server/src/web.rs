//! The web page members use: files embedded in the binary (`server/web/`),
//! served with their content types, gzip when the browser takes it, and
//! strict security headers. Scripts and styles live under
//! `/assets/VERSION/`, where VERSION is a hash of every asset, so they are
//! cached for a year and a new build is fetched whole; the page itself
//! (`/`, `/r/ROOM`, `/invite/CODE`) is revalidated on every visit with its
//! ETag. Nothing here knows HTTP framing or the protocol: `transport` asks
//! [`Site::answer`] for a path.

use std::collections::HashMap;
use std::io::Write;
use std::sync::OnceLock;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// One embedded file: its name under `/assets/VERSION/`, and its bytes.
type Embedded = (&'static str, &'static [u8]);

macro_rules! embed {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../web/", $name)))),*]
    };
}

/// Every asset, by its path under `server/web/`.
const ASSETS: &[Embedded] = embed![
    "app.css",
    "icon.svg",
    "js/app.js",
    "js/connection.js",
    "js/dom.js",
    "js/moderation.js",
    "js/rooms.js",
    "js/signin.js",
    "js/store.js",
    "js/text.js",
    "js/timeline.js",
];

const INDEX: &str = include_str!("../web/index.html");

const MANIFEST: &str = include_str!("../web/manifest.webmanifest");

/// The service worker, at the root so its scope is the whole page.
const SERVICE_WORKER: &[u8] = include_bytes!("../web/sw.js");

/// The page's security policy: scripts and styles only from this server's
/// files (no inline script, no `eval`), connections only to this server,
/// never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; manifest-src 'self'; font-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// A file ready to send: both encodings, made once.
#[derive(Debug)]
pub struct File {
    pub content_type: &'static str,
    pub plain: Bytes,
    /// `None` when compressing does not make it smaller.
    pub gzip: Option<Bytes>,
    pub etag: String,
    pub caching: Caching,
}

/// How long a browser may keep a file without asking again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// Named by content: a year, never revalidated.
    Immutable,
    /// Asked again each time (answered `304` while unchanged).
    Revalidate,
}

impl Caching {
    pub fn header(self) -> &'static str {
        match self {
            Caching::Immutable => "public, max-age=31536000, immutable",
            Caching::Revalidate => "no-cache",
        }
    }
}

/// The embedded page, built once.
#[derive(Debug)]
pub struct Site {
    /// The assets' version: the first 16 hex digits of a hash of them all.
    pub version: String,
    assets: HashMap<&'static str, File>,
    index: File,
    manifest: File,
    service_worker: File,
}

impl Site {
    /// The site, made on first use (hashing and compressing ~100 KB once).
    pub fn get() -> &'static Site {
        static SITE: OnceLock<Site> = OnceLock::new();
        SITE.get_or_init(Site::build)
    }

    fn build() -> Site {
        let mut all = Sha256::new();
        for (name, bytes) in ASSETS {
            all.update(name.as_bytes());
            all.update((bytes.len() as u64).to_le_bytes());
            all.update(bytes);
        }
        let version: String = all.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
        let assets = ASSETS
            .iter()
            .map(|(name, bytes)| (*name, File::new(content_type(name), Bytes::from_static(bytes), Caching::Immutable)))
            .collect();
        let index = INDEX.replace("{{VERSION}}", &version);
        let manifest = MANIFEST.replace("{{VERSION}}", &version);
        Site {
            assets,
            index: File::new("text/html; charset=utf-8", Bytes::from(index), Caching::Revalidate),
            manifest: File::new("application/manifest+json", Bytes::from(manifest), Caching::Revalidate),
            service_worker: File::new(
                "text/javascript; charset=utf-8",
                Bytes::from_static(SERVICE_WORKER),
                Caching::Revalidate,
            ),
            version,
        }
    }

    /// The file for a GET of `path`, if the page has one there.
    pub fn answer(&self, path: &str) -> Option<&File> {
        match path {
            "/" | "/index.html" => return Some(&self.index),
            "/manifest.webmanifest" => return Some(&self.manifest),
            "/sw.js" => return Some(&self.service_worker),
            _ => {}
        }
        if let Some(rest) = path.strip_prefix("/r/").or_else(|| path.strip_prefix("/invite/")) {
            // One segment: a deep link the page reads from its address.
            return (!rest.is_empty() && !rest.contains('/')).then_some(&self.index);
        }
        let rest = path.strip_prefix("/assets/")?;
        let (version, name) = rest.split_once('/')?;
        (version == self.version).then(|| self.assets.get(name)).flatten()
    }

    /// Every file a first visit loads, for the size budget's test.
    pub fn files(&self) -> impl Iterator<Item = (&str, &File)> {
        self.assets.iter().map(|(name, file)| (*name, file)).chain([("index.html", &self.index)])
    }
}

impl File {
    fn new(content_type: &'static str, plain: Bytes, caching: Caching) -> File {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let gzip = encoder.write_all(&plain).and_then(|()| encoder.finish()).ok();
        let gzip = gzip.filter(|g| g.len() < plain.len()).map(Bytes::from);
        let digest = Sha256::digest(&plain);
        let etag = format!("\"{}\"", digest.iter().take(12).map(|b| format!("{b:02x}")).collect::<String>());
        File { content_type, plain, gzip, etag, caching }
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_links_open_the_page_and_assets_need_the_current_version() {
        let site = Site::get();
        assert!(site.answer("/").is_some());
        assert!(site.answer("/r/cameras").is_some());
        assert!(site.answer("/invite/3f9c2a71").is_some());
        assert!(site.answer("/r/").is_none());
        assert!(site.answer("/r/a/b").is_none());
        assert!(site.answer(&format!("/assets/{}/js/app.js", site.version)).is_some());
        assert!(site.answer("/assets/0000000000000000/js/app.js").is_none(), "an old build's asset");
        assert!(site.answer(&format!("/assets/{}/../Cargo.toml", site.version)).is_none());
        let index = std::str::from_utf8(&site.index.plain).unwrap();
        assert!(index.contains(&format!("/assets/{}/js/app.js", site.version)), "the page names this build");
        assert!(!index.contains("{{VERSION}}"));
    }
}
