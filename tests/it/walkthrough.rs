//! The dev walkthrough that `serve --dev` prints (and README.md shows) runs, copy-paste, with
//! nothing but bash, curl and sed: both legs, then the demo resource server.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::lanyard_bin;

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn printed_dev_walkthrough_runs_end_to_end() {
    let mut child = Command::new(lanyard_bin())
        .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = Kill(child);
    // The banner is printed once the listener is bound; its commands run from "# 0." to the
    // closing rule.
    let mut script = String::new();
    let mut inside = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.starts_with("# 0.") {
            inside = true;
        }
        if inside && line.starts_with("=====") {
            break;
        }
        if inside {
            script.push_str(&line);
            script.push('\n');
        }
    }
    assert!(
        script.contains("# 5."),
        "walkthrough not printed:\n{script}"
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "walkthrough failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(r#""action":"repo.read""#), "{stdout}");
    assert!(stdout.contains(r#""human":"00u-alice""#), "{stdout}");
    assert!(stdout.contains("HTTP/1.1 403 Forbidden"), "{stdout}");
    assert!(stdout.contains(r#"scope="issue.comment""#), "{stdout}");
}
