//! The HTML report in a real browser: headless Chromium (Debian's, installed
//! by tests/engines/setup.sh) loads each report from disk at a narrow and a
//! wide window with the network unreachable, runs its script, and must show
//! every chart bar and stratum row without a console error; a screenshot of
//! each is written to target/report-screenshots/ for review.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::tempdir;
use crate::common::{root, stderr, strat};

/// Debian's Chromium (tests/engines/setup.sh installs it).
fn chromium() -> PathBuf {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!("chromium is missing: run `bash tests/engines/setup.sh` (tests/run-all.sh does)")
    })
}

/// Chromium's DOM of `page` after its scripts ran, and what it logged.
fn load(page: &Path, width: u32, screenshot: Option<&Path>) -> (String, String) {
    let profile = page.with_extension(format!("profile-{width}"));
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        // No network: every host resolves to nothing, and any proxy is a dead port.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=127.0.0.1:9",
        "--enable-logging=stderr",
        "--v=0",
        &format!("--window-size={width},1200"),
        &format!("--user-data-dir={}", profile.display()),
    ]);
    match screenshot {
        Some(png) => cmd.arg(format!("--screenshot={}", png.display())),
        None => cmd.arg("--dump-dom"),
    };
    let out = cmd
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {}", stderr(&out));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr(&out),
    )
}

#[test]
fn html_reports_render_in_headless_chromium() {
    let dir = tempdir("browser");
    for f in ["members.csv", "last_test_set.csv"] {
        std::fs::copy(root().join("examples/data").join(f), dir.join(f)).unwrap();
    }
    let shots = root().join("target/report-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let cases = [
        (
            "cohort",
            std::fs::read_to_string(root().join("examples/cohort.strat")).unwrap(),
        ),
        (
            "split",
            std::fs::read_to_string(root().join("examples/train_val_test.strat")).unwrap(),
        ),
    ];
    for (name, text) in cases {
        let rule = dir.join(format!("{name}.strat"));
        std::fs::write(&rule, text.replace("data/", "")).unwrap();
        let page = dir.join(format!("{name}.html"));
        let out = dir.join(format!("{name}.csv"));
        let o = strat(&[
            "run",
            rule.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--report",
            page.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let html = std::fs::read_to_string(&page).unwrap();
        let bars = html.matches("class=\"bar ").count();
        let rows = html.matches("<tr>").count() + html.matches("<tr class=\"alert\">").count();
        assert!(bars > 0 && rows > 0, "{name}: an empty page");
        for width in [420, 1280] {
            let (dom, log) = load(&page, width, None);
            assert_eq!(
                dom.matches("class=\"bar ").count(),
                bars,
                "{name} at {width}px: bars"
            );
            let shown = dom.matches("<tr>").count() + dom.matches("<tr class=\"alert\">").count();
            assert_eq!(shown, rows, "{name} at {width}px: stratum rows");
            for line in log.lines() {
                assert!(
                    !(line.contains("CONSOLE") || line.contains("Uncaught")),
                    "{name} at {width}px: {line}"
                );
            }
            let png = shots.join(format!("{name}-{width}.png"));
            load(&page, width, Some(&png));
            let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
            assert!(
                size > 5_000,
                "{name} at {width}px: no screenshot ({size} bytes)"
            );
        }
    }
}
