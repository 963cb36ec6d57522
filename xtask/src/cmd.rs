//! Running external programs from the workspace root, echoing them, and turning a non-zero exit
//! into an error that names the command.

use std::{
    env,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::OnceLock,
};

use anyhow::{Context, Result, bail};

/// The workspace root: the parent of this crate's directory.
pub(crate) fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
    })
}

/// `cargo`, the same one that runs xtask when there is one, in the workspace root.
pub(crate) fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(program);
    command.args(args).current_dir(root());
    command
}

/// The command line, for messages: `cargo clippy --workspace`.
pub(crate) fn display(command: &Command) -> String {
    let program = Path::new(command.get_program());
    let program = program.file_name().unwrap_or(program.as_os_str());
    std::iter::once(program)
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `command` with inherited output, failing when it cannot start or exits non-zero.
pub(crate) fn run(command: &mut Command) -> Result<()> {
    let status = status(command)?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(command));
    }
    Ok(())
}

/// Runs `command` with inherited output and returns how it exited.
pub(crate) fn status(command: &mut Command) -> Result<ExitStatus> {
    let line = display(command);
    eprintln!("$ {line}");
    command
        .status()
        .with_context(|| format!("could not start `{line}`"))
}

/// Runs `command` quietly and returns its stdout; on failure the error carries its stderr.
pub(crate) fn read(command: &mut Command) -> Result<String> {
    let child = start_read(command)?;
    finish_read(command, child)
}

/// Starts `command` quietly, its output kept for [`finish_read`]: for work done while it runs.
pub(crate) fn start_read(command: &mut Command) -> Result<Child> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{}`", display(command)))
}

/// Waits for `child`, started from `command` by [`start_read`], as [`read`] does.
pub(crate) fn finish_read(command: &Command, child: Child) -> Result<String> {
    let line = display(command);
    let output = child
        .wait_with_output()
        .with_context(|| format!("waiting for `{line}`"))?;
    if !output.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether `command` runs and exits zero, all output discarded.
pub(crate) fn succeeds(command: &mut Command) -> bool {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The first line of `tool args…` (a `--version`), or why there is none.
pub(crate) fn version(tool: &str, args: &[&str]) -> String {
    let mut command = if tool == "cargo" {
        cargo(args)
    } else {
        let mut command = Command::new(tool);
        command.args(args);
        command
    };
    match read(&mut command) {
        Ok(out) => out.lines().next().unwrap_or_default().to_owned(),
        Err(_) => "(not available)".to_owned(),
    }
}

/// The executable `name` in a directory of `PATH`.
pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?).find_map(|dir| executable(&dir.join(name)))
}

/// `path` when it is an executable file.
pub(crate) fn executable(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let metadata = path.metadata().ok()?;
    (metadata.is_file() && metadata.permissions().mode() & 0o111 != 0).then(|| path.to_path_buf())
}
