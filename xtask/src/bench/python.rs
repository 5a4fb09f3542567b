//! The Python columns' environment: a virtualenv at `target/bench/venv`
//! with uvloop installed from PyPI, made once and reused.
//!
//! The interpreter is the newest CPython ≥ 3.11 found among `python3` on
//! `PATH` and pyenv's versions (`$PYENV_ROOT`, `pyenv root`, or
//! `~/.pyenv`). An existing virtualenv is reused as it is, whichever
//! interpreter made it; delete the directory to move to a newer Python.
//! Nothing here is fatal: when Python, `venv` or pip fails, the columns that
//! need it say why and the rest of the bench runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::display_command;

/// The oldest Python the columns accept: `run_overhead` needs
/// `asyncio.Runner`, new in 3.11.
const MINIMUM: (u32, u32) = (3, 11);

/// pip gets this long to install uvloop (a wheel download, or a build from
/// source where there is no wheel).
const PIP_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a Python column cannot run: a short reason for its table cells, and
/// the whole story for the terminal and the report.
#[derive(Debug, Clone)]
pub(crate) struct Unavailable {
    pub(crate) short: String,
    pub(crate) detail: String,
}

impl Unavailable {
    fn new(short: &str, detail: impl Into<String>) -> Unavailable {
        Unavailable {
            short: short.to_owned(),
            detail: detail.into(),
        }
    }
}

/// The virtualenv the Python columns run in.
#[derive(Debug, Clone)]
pub(crate) struct Environment {
    /// The virtualenv's interpreter.
    pub(crate) interpreter: PathBuf,
    /// `CPython 3.13.0`.
    pub(crate) version: String,
    /// uvloop's version, or why it is not there.
    pub(crate) uvloop: Result<String, Unavailable>,
}

/// Makes (or reuses) the virtualenv in `venv` and installs uvloop into it.
pub(crate) fn prepare(venv: &Path) -> Result<Environment, Unavailable> {
    let interpreter = venv_interpreter(venv);
    let version = match probe(&interpreter) {
        Some(found) if found.is_usable() => {
            println!(
                "reusing the Python virtualenv {} ({})",
                venv.display(),
                found.label()
            );
            found.label()
        }
        _ => {
            let base = newest_interpreter().ok_or_else(|| {
                Unavailable::new(
                    "no Python ≥ 3.11",
                    "no CPython ≥ 3.11 found (`python3` on PATH, or pyenv's versions)",
                )
            })?;
            let mut command = Command::new(&base.path);
            // --clear: a directory left by a broken or older attempt is
            // replaced, not patched.
            command.args(["-m", "venv", "--clear"]).arg(venv);
            run_step(&mut command, Duration::from_secs(300))
                .map_err(|why| Unavailable::new("python3 -m venv failed", why))?;
            probe(&interpreter)
                .filter(Interpreter::is_usable)
                .map(|found| found.label())
                .ok_or_else(|| {
                    Unavailable::new(
                        "python3 -m venv failed",
                        format!("{} does not run after `-m venv`", interpreter.display()),
                    )
                })?
        }
    };

    let uvloop = match uvloop_version(&interpreter) {
        Some(version) => Ok(version),
        None => {
            let mut command = Command::new(&interpreter);
            command.args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "uvloop",
            ]);
            match run_step(&mut command, PIP_TIMEOUT) {
                Ok(()) => uvloop_version(&interpreter).ok_or_else(|| {
                    Unavailable::new(
                        "uvloop install failed",
                        "pip installed uvloop but `import uvloop` fails",
                    )
                }),
                Err(why) => Err(Unavailable::new("uvloop install failed", why)),
            }
        }
    };
    Ok(Environment {
        interpreter,
        version,
        uvloop,
    })
}

/// The interpreter inside a virtualenv.
fn venv_interpreter(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// Prints and runs one setup step, failing with its output.
fn run_step(command: &mut Command, timeout: Duration) -> Result<(), String> {
    let shown = display_command(command);
    println!("$ {shown}");
    super::run_with_timeout(command, timeout)
        .map(drop)
        .map_err(|why| format!("`{shown}`: {why}"))
}

/// An interpreter found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interpreter {
    path: PathBuf,
    implementation: String,
    version: (u32, u32, u32),
}

impl Interpreter {
    fn is_usable(&self) -> bool {
        self.implementation == "CPython" && (self.version.0, self.version.1) >= MINIMUM
    }

    fn label(&self) -> String {
        let (major, minor, micro) = self.version;
        format!("{} {major}.{minor}.{micro}", self.implementation)
    }
}

/// Asks `path` what it is; `None` when it does not run.
fn probe(path: &Path) -> Option<Interpreter> {
    let output = Command::new(path)
        .args([
            "-c",
            "import platform, sys; print(platform.python_implementation(), '%d.%d.%d' % sys.version_info[:3])",
        ])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    parse_probe(path, &String::from_utf8_lossy(&output.stdout))
}

/// Reads `CPython 3.12.1`.
fn parse_probe(path: &Path, text: &str) -> Option<Interpreter> {
    let (implementation, version) = text.trim().split_once(' ')?;
    let mut numbers = version.split('.').map(|number| number.parse::<u32>().ok());
    let version = (numbers.next()??, numbers.next()??, numbers.next()??);
    Some(Interpreter {
        path: path.to_owned(),
        implementation: implementation.to_owned(),
        version,
    })
}

/// The newest usable interpreter among the candidates; `python3` on PATH
/// wins a tie.
fn newest_interpreter() -> Option<Interpreter> {
    let found: Vec<Interpreter> = candidates().iter().filter_map(|path| probe(path)).collect();
    newest(found)
}

fn newest(found: Vec<Interpreter>) -> Option<Interpreter> {
    found
        .into_iter()
        .filter(Interpreter::is_usable)
        .rev()
        .max_by_key(|interpreter| interpreter.version)
}

/// `python3` on PATH, then every pyenv version's `bin/python3`.
fn candidates() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from(if cfg!(windows) { "python" } else { "python3" })];
    if let Some(root) = pyenv_root() {
        let versions = root.join("versions");
        if let Ok(entries) = std::fs::read_dir(&versions) {
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.path().join("bin").join("python3"))
                .filter(|path| path.is_file())
                .collect();
            found.sort();
            paths.extend(found);
        }
    }
    paths
}

fn pyenv_root() -> Option<PathBuf> {
    if let Some(root) = std::env::var_os("PYENV_ROOT") {
        return Some(PathBuf::from(root));
    }
    let from_pyenv = Command::new("pyenv")
        .arg("root")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    from_pyenv.or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".pyenv")))
}

/// uvloop's version in the virtualenv, if it imports.
fn uvloop_version(interpreter: &Path) -> Option<String> {
    let output = Command::new(interpreter)
        .args(["-c", "import uvloop; print(uvloop.__version__)"])
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !version.is_empty()).then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interpreter(path: &str, implementation: &str, version: (u32, u32, u32)) -> Interpreter {
        Interpreter {
            path: PathBuf::from(path),
            implementation: implementation.to_owned(),
            version,
        }
    }

    #[test]
    fn reads_what_an_interpreter_says() {
        let found = parse_probe(Path::new("/p"), "CPython 3.12.1\n").unwrap();
        assert_eq!(found, interpreter("/p", "CPython", (3, 12, 1)));
        assert_eq!(found.label(), "CPython 3.12.1");
        assert!(parse_probe(Path::new("/p"), "Python 3.12").is_none());
        assert!(parse_probe(Path::new("/p"), "").is_none());
    }

    #[test]
    fn picks_the_newest_cpython_from_3_11() {
        let found = vec![
            interpreter("python3", "CPython", (3, 12, 1)),
            interpreter("/pyenv/3.10", "CPython", (3, 10, 13)),
            interpreter("/pyenv/3.12", "CPython", (3, 12, 1)),
            interpreter("/pyenv/pypy", "PyPy", (3, 14, 0)),
            interpreter("/pyenv/3.13", "CPython", (3, 13, 0)),
        ];
        assert_eq!(newest(found.clone()).unwrap().path, Path::new("/pyenv/3.13"));
        // A tie goes to the first found, python3 on PATH.
        assert_eq!(newest(found[..3].to_vec()).unwrap().path, Path::new("python3"));
        assert!(newest(vec![interpreter("old", "CPython", (3, 10, 0))]).is_none());
    }
}
