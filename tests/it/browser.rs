//! Headless Chromium (Debian's `chromium` package) for tests of what people see: dump a
//! page's DOM after it rendered, take a screenshot, print it to PDF. Shared by the tests of
//! the evidence page and the dashboard.
//!
//! Every run gets a fresh profile directory and the flags that keep Chromium off the
//! network (no background networking, component updates, sync or QUIC): on a closed
//! network it otherwise waits on requests that never answer. A run is killed after
//! [`RUN_LIMIT`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a single Chromium run may take.
pub const RUN_LIMIT: Duration = Duration::from_secs(90);

/// Where Chromium is looked for: `$CHROMIUM`, else Debian's path.
const DEFAULT_PATH: &str = "/usr/bin/chromium";

pub struct Chromium {
    path: PathBuf,
}

impl Chromium {
    /// Chromium, if installed. When it is missing, a test outside CI is skipped (`None`,
    /// with a message saying so); in CI (`CI` set) it fails, so a green run always means
    /// the browser really ran.
    pub fn find(test: &str) -> Option<Chromium> {
        let path = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from(DEFAULT_PATH), PathBuf::from);
        if path.is_file() {
            return Some(Chromium { path });
        }
        if std::env::var_os("CI").is_some() {
            panic!(
                "{test}: Chromium is missing at {} and CI is set: install Debian's chromium package \
                 (.ci/run does)",
                path.display()
            );
        }
        eprintln!(
            "SKIPPED {test}: Chromium is missing at {} (apt-get install chromium); outside CI the browser \
             test is skipped",
            path.display()
        );
        None
    }

    /// The DOM of the page at `url` once it has loaded, as HTML.
    pub fn dump_dom(&self, url: &str) -> String {
        let out = self.run(&["--dump-dom".to_owned()], url);
        String::from_utf8(out).expect("the dumped DOM is UTF-8")
    }

    /// A PNG screenshot of the page at `url` in a window of `width` × `height`.
    pub fn screenshot(&self, url: &str, png: &Path, (width, height): (u32, u32)) {
        self.run(
            &[
                format!("--screenshot={}", png.display()),
                format!("--window-size={width},{height}"),
                "--hide-scrollbars".to_owned(),
            ],
            url,
        );
        assert!(is_non_empty(png), "Chromium wrote no screenshot at {}", png.display());
    }

    /// The page at `url` printed to PDF (the browser's print layout, `@page` rules applied).
    pub fn print_to_pdf(&self, url: &str, pdf: &Path) {
        self.run(
            &[
                format!("--print-to-pdf={}", pdf.display()),
                "--no-pdf-header-footer".to_owned(),
            ],
            url,
        );
        assert!(is_non_empty(pdf), "Chromium wrote no PDF at {}", pdf.display());
    }

    /// Runs Chromium on `url` with `extra` flags; returns its standard output. Panics with
    /// its standard error when it fails or runs past [`RUN_LIMIT`].
    fn run(&self, extra: &[String], url: &str) -> Vec<u8> {
        let scratch = tempfile::Builder::new()
            .prefix("offboard-chromium-")
            .tempdir()
            .expect("a profile directory");
        let stdout_path = scratch.path().join("stdout");
        let stderr_path = scratch.path().join("stderr");
        let mut child = Command::new(&self.path)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", scratch.path().join("profile").display()))
            .args(extra)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.path.display()));
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("poll chromium") {
                break status;
            }
            if started.elapsed() > RUN_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "Chromium ran past {RUN_LIMIT:?} on {url}; its stderr:\n{}",
                    crate::helpers::tail(&std::fs::read_to_string(&stderr_path).unwrap_or_default(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "Chromium failed ({status}) on {url}; its stderr:\n{}",
            crate::helpers::tail(&std::fs::read_to_string(&stderr_path).unwrap_or_default(), 30)
        );
        std::fs::read(&stdout_path).expect("chromium's stdout")
    }
}

/// A `file://` URL for a local file.
pub fn file_url(path: &Path) -> String {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    url::Url::from_file_path(&absolute)
        .unwrap_or_else(|()| panic!("{} is not an absolute path", absolute.display()))
        .to_string()
}

/// A directory under the build's `target/tmp` for files a test leaves to be looked at
/// (screenshots, PDFs), emptied first.
pub fn output_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

fn is_non_empty(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}
