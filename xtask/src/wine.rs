//! `cargo xtask wine`: the Windows build, run under Wine, set up from nothing.
//!
//! A file of its own because it is the one task that reaches outside cargo:
//! it installs Wine and mingw when they are missing (Debian's `wine64`, `wine`
//! and `gcc-mingw-w64-x86-64`), makes a Wine prefix inside the cargo target
//! directory, and puts a `bcryptprimitives.dll` of our own into it. Rust's
//! std (since 1.78) imports `ProcessPrng` from that DLL, which Wine 8.0 lacks,
//! so without it every Windows binary dies at start-up (status c0000135). The
//! DLL's source is `xtask/wine/bcryptprimitives.c`.
//!
//! Every step checks first and does nothing when its work is done, so a
//! second run only builds and runs the tests. Then the Windows test suites run
//! with Wine as cargo's runner for `x86_64-pc-windows-gnu`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use crate::{TaskError, cargo, display_command, run_echoed, workspace_root};

/// The Windows target the suites are built for.
const TARGET: &str = "x86_64-pc-windows-gnu";

/// What Debian calls the packages that bring `wine` and the mingw linker.
const PACKAGES: &[&str] = &["wine64", "wine", "gcc-mingw-w64-x86-64"];

/// The mingw C compiler, which is also the linker Rust uses for `TARGET`.
const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";

/// The crates whose own tests (unit tests and `tests/`) run on Windows.
const CRATES: &[&str] = &[
    "aio-events",
    "aio-base-policy",
    "aio-selector",
    "aio-net",
    "aio-process",
    "aio-windows",
    "aio",
];

/// The suites of `tests/` (package `aio-tests`) that apply to Windows; their
/// Unix-only cases are `#[cfg(unix)]` (`net_udp_unix` keeps its UDP half).
/// The others test Unix-only API (signals, `RLIMIT_NOFILE`, child watchers,
/// subprocesses on child watchers) and are not built; `windows_process` is
/// the subprocesses' Windows suite.
const SUITES: &[&str] = &[
    "loop_core",
    "main_thread",
    "proptest_policy",
    "proptest_timer_heap",
    "net_tcp",
    "net_udp_unix",
    "windows",
    "windows_process",
];

/// How long one `cargo test` step may take, build included (a cold build
/// and both steps take under a minute here): a test hung under Wine fails the
/// task instead of eating CI's time.
const STEP_LIMIT: Duration = Duration::from_secs(20 * 60);

pub(crate) fn run() -> Result<(), TaskError> {
    let started = Instant::now();
    let total = 5;
    step(1, total, "Wine and the mingw toolchain");
    install_tools()?;

    step(2, total, "the Wine prefix");
    let target_dir = cargo_target_dir()?;
    let prefix = target_dir.join("wine-prefix");
    make_prefix(&prefix)?;

    step(3, total, "the ProcessPrng shim (bcryptprimitives.dll)");
    install_shim(&target_dir, &prefix)?;

    // One wineserver for all the test binaries: started persistent, it
    // saves each binary the server's start-up, and is stopped at the end
    // whatever the tests did.
    let server = WineServer::start(&prefix)?;

    step(4, total, "the crates' own tests under Wine");
    let mut crates = cargo(["test", "--target", TARGET]);
    for name in CRATES {
        crates.args(["-p", name]);
    }
    wine_env(&mut crates, &prefix);
    let crates_result = run_with_deadline(&mut crates, STEP_LIMIT);

    step(
        5,
        total,
        "the platform-neutral and Windows suites of tests/ under Wine",
    );
    let mut suites = cargo(["test", "--target", TARGET, "-p", "aio-tests"]);
    for name in SUITES {
        suites.args(["--test", name]);
    }
    wine_env(&mut suites, &prefix);
    let suites_result = run_with_deadline(&mut suites, STEP_LIMIT);

    server.stop();
    crates_result?;
    suites_result?;
    println!(
        "xtask wine: all Windows tests passed under Wine in {}",
        seconds(started.elapsed())
    );
    Ok(())
}

/// As `run_echoed`, but kills `command` after `limit`. Killing cargo leaves
/// the Wine process of the test it was running; `WineServer::stop` ends it.
fn run_with_deadline(command: &mut Command, limit: Duration) -> Result<(), TaskError> {
    let shown = display_command(command);
    println!("$ {shown}");
    let mut child = command
        .spawn()
        .map_err(|error| TaskError::failed(format!("could not start `{shown}`: {error}")))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(TaskError::failed(format!("`{shown}` failed ({status})"))),
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(TaskError::failed(format!(
                    "`{shown}` did not finish within {}; killed",
                    seconds(limit)
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(error) => return Err(TaskError::failed(format!("waiting for `{shown}`: {error}"))),
        }
    }
}

fn step(number: usize, total: usize, what: &str) {
    println!("\n== xtask wine [{number}/{total}] {what}");
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

/// Whether `program` is on `PATH` (as a file; it is run later, which says
/// whether it works).
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

/// Installs Wine and mingw with apt-get when either is missing.
fn install_tools() -> Result<(), TaskError> {
    let missing: Vec<&str> = ["wine", "wineboot", "wineserver", MINGW_GCC]
        .into_iter()
        .filter(|program| !on_path(program))
        .collect();
    if missing.is_empty() {
        println!("found wine, wineboot, wineserver and {MINGW_GCC}: nothing to install");
        return Ok(());
    }
    println!("missing: {}", missing.join(", "));
    if !on_path("apt-get") {
        return Err(TaskError::failed(format!(
            "cannot install {} without apt-get; install Wine 8 (64-bit) and mingw-w64's {MINGW_GCC} by hand",
            PACKAGES.join(", ")
        )));
    }
    let started = Instant::now();
    // Root runs apt-get itself; anyone else goes through sudo, which asks
    // for a password if it must.
    let apt = |args: &[&str]| {
        let mut command = if is_root() {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    run_echoed(&mut apt(&["update", "-q"]))?;
    let mut install = apt(&["install", "-y", "-q"]);
    install.args(PACKAGES);
    run_echoed(&mut install)?;
    println!("installed in {}", seconds(started.elapsed()));
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| output.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// The cargo target directory, as cargo resolves it (so `CARGO_TARGET_DIR`
/// and `build.target-dir` are honoured).
fn cargo_target_dir() -> Result<PathBuf, TaskError> {
    let output = cargo(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .map_err(|error| TaskError::failed(format!("could not run `cargo metadata`: {error}")))?;
    if !output.status.success() {
        return Err(TaskError::failed(format!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let json = String::from_utf8_lossy(&output.stdout);
    json_string_field(&json, "target_directory")
        .map(PathBuf::from)
        .ok_or_else(|| TaskError::failed("`cargo metadata` printed no target_directory"))
}

/// The value of the first `"key":"..."` in `json`, unescaped (only the
/// escapes a path can hold).
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut value = String::new();
    let mut chars = json[start..].chars();
    loop {
        match chars.next()? {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
}

/// Sets the environment every Wine process of this task gets: the prefix,
/// no debug channels (Wine's fixme lines would drown the test output), and
/// no display, so nothing tries to open a window.
fn wine_env(command: &mut Command, prefix: &Path) {
    command
        .env("WINEPREFIX", prefix)
        .env("WINEDEBUG", "-all")
        // No Mono or Gecko: their installers would ask, and nothing here
        // needs .NET or HTML.
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .env("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER", "wine")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
}

/// Makes the 64-bit prefix with `wineboot -i`, unless it is already made.
fn make_prefix(prefix: &Path) -> Result<(), TaskError> {
    // A prefix is made when it has its registry and the system32 directory
    // the shim goes into.
    let system32 = system32(prefix);
    if prefix.join("system.reg").is_file() && system32.is_dir() {
        println!("{} is set up", prefix.display());
        return Ok(());
    }
    let started = Instant::now();
    fs::create_dir_all(prefix)
        .map_err(|error| TaskError::failed(format!("could not create {}: {error}", prefix.display())))?;
    let mut boot = Command::new("wineboot");
    boot.arg("-i");
    wine_env(&mut boot, prefix);
    run_echoed(&mut boot)?;
    println!(
        "(a complaint about syswow64\\rundll32.exe is expected: without wine32 the prefix has no 32-bit half, which nothing here needs)"
    );
    // wineboot returns before the prefix's services are done writing the
    // registry; the server exits when they are.
    let mut wait = Command::new("wineserver");
    wait.arg("-w");
    wine_env(&mut wait, prefix);
    run_echoed(&mut wait)?;
    if !system32.is_dir() {
        return Err(TaskError::failed(format!(
            "wineboot ran but {} does not exist",
            system32.display()
        )));
    }
    println!("prefix made in {}", seconds(started.elapsed()));
    Ok(())
}

fn system32(prefix: &Path) -> PathBuf {
    prefix.join("drive_c").join("windows").join("system32")
}

/// Builds `bcryptprimitives.dll` from `xtask/wine/bcryptprimitives.c` when
/// the source is newer than the DLL, and copies it into the prefix when the
/// copy there differs.
fn install_shim(target_dir: &Path, prefix: &Path) -> Result<(), TaskError> {
    let source = workspace_root()
        .join("xtask")
        .join("wine")
        .join("bcryptprimitives.c");
    let build_dir = target_dir.join("wine-shim");
    let built = build_dir.join("bcryptprimitives.dll");
    let fresh =
        matches!((modified(&built), modified(&source)), (Some(built), Some(source)) if built >= source);
    if fresh {
        println!("{} is up to date", built.display());
    } else {
        fs::create_dir_all(&build_dir).map_err(|error| {
            TaskError::failed(format!("could not create {}: {error}", build_dir.display()))
        })?;
        let mut gcc = Command::new(MINGW_GCC);
        gcc.args(["-shared", "-O2", "-Wall", "-Wextra", "-Werror", "-s", "-o"])
            .arg(&built)
            .arg(&source)
            .arg("-ladvapi32");
        run_echoed(&mut gcc)?;
    }
    let installed = system32(prefix).join("bcryptprimitives.dll");
    let dll = read(&built)?;
    if fs::read(&installed).ok().as_deref() == Some(dll.as_slice()) {
        println!("{} is installed", installed.display());
        return Ok(());
    }
    fs::write(&installed, &dll)
        .map_err(|error| TaskError::failed(format!("could not write {}: {error}", installed.display())))?;
    println!("copied to {}", installed.display());
    Ok(())
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|metadata| metadata.modified()).ok()
}

fn read(path: &Path) -> Result<Vec<u8>, TaskError> {
    fs::read(path).map_err(|error| TaskError::failed(format!("could not read {}: {error}", path.display())))
}

/// A wineserver kept alive for the task's test binaries.
struct WineServer {
    prefix: PathBuf,
}

impl WineServer {
    fn start(prefix: &Path) -> Result<WineServer, TaskError> {
        // `-p`: persistent, so it does not exit between two test binaries;
        // if one already serves this prefix, this one exits at once.
        let mut server = Command::new("wineserver");
        server.arg("-p");
        wine_env(&mut server, prefix);
        run_echoed(&mut server)?;
        Ok(WineServer {
            prefix: prefix.to_path_buf(),
        })
    }

    /// Ends the server and whatever Wine processes a failed or hung test
    /// left in this prefix (and only this prefix), and waits until they are
    /// gone. Wine's background services (services.exe, winedevice.exe)
    /// inherit the test binaries' stdout, so while they live, a pipe that
    /// reads this task's output (`cargo xtask wine | tee`) never ends; and a
    /// next run must not find a server that is still going away.
    fn stop(self) {
        for flag in ["-k", "-w"] {
            let mut command = Command::new("wineserver");
            command.arg(flag);
            wine_env(&mut command, &self.prefix);
            let _ = run_echoed(&mut command);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_target_directory_from_cargo_metadata() {
        let json = r#"{"packages":[],"target_directory":"/work/x\"y/target","version":1}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some("/work/x\"y/target")
        );
        assert_eq!(json_string_field(json, "workspace_root"), None);
    }
}
