//! The system under test: the `omniline-local` binary as a child process on a fresh data
//! directory, its log captured to a file, its CPU time and peak RSS read from `/proc`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Stack {
    child: Child,
    pub base: String,
    pub pid: u32,
}

pub struct StackOptions<'a> {
    pub binary: &'a Path,
    pub data_dir: &'a Path,
    pub log_path: PathBuf,
    pub line_url: &'a str,
    pub admin_token: &'a str,
    pub router_workers: usize,
    pub line_timeout_ms: u64,
    pub durability: &'a str,
    /// Variables of the backend (`OMNILINE_BACKEND=aws` and the resources' names), set last.
    pub backend_env: &'a [(String, String)],
}

impl Stack {
    pub fn start(o: StackOptions<'_>) -> Result<Self, String> {
        let log = std::fs::File::create(&o.log_path)
            .map_err(|e| format!("{}: {e}", o.log_path.display()))?;
        let stderr_log = log
            .try_clone()
            .map_err(|e| format!("{}: {e}", o.log_path.display()))?;
        let mut child = Command::new(o.binary)
            .env("PORT", "0")
            .env("DATA_DIR", o.data_dir)
            .env("LINE_API_BASE", o.line_url)
            .env("LINE_DATA_API_BASE", o.line_url)
            .env("ADMIN_TOKEN", o.admin_token)
            .env("ROUTER_WORKERS", o.router_workers.to_string())
            .env("LINE_TIMEOUT_MS", o.line_timeout_ms.to_string())
            .env("EMBEDDED_DURABILITY", o.durability)
            .env("RUST_LOG", "info")
            .env_remove("PUBLIC_BASE_URL")
            .env_remove("OMNILINE_BACKEND")
            .envs(o.backend_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_log))
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {} ({e}); build it first: cargo build --release --bin omniline-local",
                    o.binary.display()
                )
            })?;
        let pid = child.id();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut log = log;
        let base = loop {
            let Some(Ok(line)) = lines.next() else {
                return Err(format!(
                    "omniline-local exited before it was ready; see {}",
                    o.log_path.display()
                ));
            };
            let _ = writeln!(log, "{line}");
            if let Some(v) = line.trim().strip_prefix("base URL:") {
                break v.trim().to_owned();
            }
        };
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
            }
        });
        Ok(Self { child, base, pid })
    }

    /// CPU time (user + system) used so far.
    pub fn cpu(&self) -> Duration {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return Duration::ZERO;
        };
        // Fields after the command name in parentheses: utime is the 14th field, stime the 15th.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            return Duration::ZERO;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // rest starts at field 3 (state): utime = field 14 → index 11, stime → 12.
        let total = ticks(11) + ticks(12);
        Duration::from_millis(total * 1000 / clock_ticks())
    }

    /// Peak resident set size in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }

    pub fn stop(mut self) {
        // SIGTERM: the stack shuts down gracefully.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn clock_ticks() -> u64 {
    // sysconf(_SC_CLK_TCK) is 100 on Linux (USER_HZ), whatever the kernel's HZ.
    100
}
