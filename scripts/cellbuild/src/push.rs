//! `cellbuild push`: rebuild one cell and send its object into a running guest (`make push CELL=<crate>`).
//!
//! One build, one hash per crate: objects of two cargo invocations with different feature sets get different crate
//! hashes and would not bind to the running nano_core. So push runs the *same* whole-workspace cargo build as
//! `cellbuild build` (incremental: only the edited crate and its dependents recompile) and extracts the one cell's
//! object the same way ([`crate::pipeline`]), into `<out>/push/` so that `<out>/cells/`, which describes the running
//! image, stays as it is.
//!
//! Control flow of [`push`]:
//! 1. `cargo metadata`: the cell must be a kernel cell outside nano_core's dependency closure (code linked into
//!    nano_core cannot be replaced without a reboot; applications live in another namespace and are not pushed).
//! 2. The workspace build; extract, strip and check the object (relocation types).
//! 3. Check it against the running image (`<image>/nano_core.syms` and `<image>/cells.manifest`): every undefined
//!    symbol must be defined there, or the push is refused before anything is sent. Report whether its exports
//!    match the image's entry of that cell by mangled name (same crate hash).
//! 4. Frame it (`push_frame`), send it to the guest's COM2 socket, wait for the reply line ([`exchange`]).

use crate::cargo::{self, BuildOptions};
use crate::elf::demangle;
use crate::error::{Context, Error, Result};
use crate::manifest::{self, CellRecord};
use crate::pipeline;
use crate::symfile;
use crate::workspace::{BASE_PACKAGE, CellKind, Workspace};
use push_frame::Reply;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Everything `cellbuild push` can be told.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The kernel workspace root (where the edited source is).
    pub root: PathBuf,
    /// Target spec relative to the root.
    pub target_spec: PathBuf,
    /// Output directory, relative to the root unless absolute; the object goes to `<out>/push/`.
    pub out_dir: PathBuf,
    /// Where the running image's `nano_core.syms` and `cells.manifest` are (default `<root>/<out>`).
    pub image_dir: Option<PathBuf>,
    /// The cell (package) to push.
    pub cell: String,
    /// The Unix socket QEMU connects the guest's COM2 to.
    pub socket: PathBuf,
    /// How long to wait for the guest's reply.
    pub reply_timeout: Duration,
    /// Extra `cargo build` arguments.
    pub cargo_args: Vec<String>,
}

/// What a successful push did.
#[derive(Debug, Clone)]
pub struct PushSummary {
    /// The cell pushed.
    pub cell: String,
    /// The name the guest stored it under.
    pub stored_as: String,
    /// Object bytes sent.
    pub object_bytes: usize,
    /// Whether the object's exports equal the image's entry of that cell by mangled name (same crate hash).
    pub same_crate_hash: Option<bool>,
    /// Seconds spent building (cargo and extraction) and sending (until the reply).
    pub build_seconds: f64,
    /// Seconds from sending the frame to the reply.
    pub send_seconds: f64,
}

impl std::fmt::Display for PushSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hash = match self.same_crate_hash {
            Some(true) => "same crate hash as the image's entry",
            Some(false) => "exports differ from the image's entry",
            None => "a cell new to the image",
        };
        write!(
            f,
            "cellbuild: push: guest stored {} as {} ({} bytes; {hash}); build {:.1} s, transfer {:.2} s\n\
             cellbuild: push: apply it at the shell with `swap <running version of {}> {}`",
            self.cell,
            self.stored_as,
            self.object_bytes,
            self.build_seconds,
            self.send_seconds,
            self.cell,
            self.stored_as
        )
    }
}

/// Rebuilds cell `options.cell`, checks it against the running image and pushes it (see the module docs).
///
/// # Errors
/// The cell cannot be pushed (unknown, in nano_core, an application), the build failed, the object needs symbols
/// the running image lacks, the socket cannot be reached, or the guest rejected it (its reason is in the message).
pub fn push(options: &PushOptions) -> Result<PushSummary> {
    let started = Instant::now();
    let root = &options.root;
    let out = root.join(&options.out_dir);
    let image_dir = options.image_dir.clone().unwrap_or_else(|| out.clone());

    let workspace = Workspace::load(root)?;
    let package = workspace
        .member(&options.cell)
        .ok_or_else(|| Error(format!("no workspace package named `{}`", options.cell)))?;
    let base = workspace
        .member(BASE_PACKAGE)
        .ok_or_else(|| Error(format!("the workspace has no `{BASE_PACKAGE}` package")))?;
    if workspace.closure(&base.id).contains(&package.id) {
        return Err(Error(format!(
            "`{}` is linked into nano_core (the base image), not loaded as a cell: it cannot be pushed; rebuild and \
             reboot the image instead",
            options.cell
        )));
    }
    if workspace.kind_of(package) == CellKind::Application {
        return Err(Error(format!("`{}` is an application; only kernel cells can be pushed", options.cell)));
    }

    let artifacts = cargo::build_workspace(&BuildOptions {
        root: root.clone(),
        target_spec: options.target_spec.clone(),
        extra_args: options.cargo_args.clone(),
    })?;
    let by_package = pipeline::libraries_by_package(&artifacts);
    let push_dir = out.join("push");
    std::fs::create_dir_all(&push_dir).context(push_dir.display())?;
    let cell = pipeline::cell_of_member(&workspace, package, &by_package, &push_dir, &push_dir.join("raw"))?;
    let same_crate_hash = check_against_image(&cell.record, &image_dir)?;
    let object = std::fs::read(&cell.path).context(cell.path.display())?;
    let build_seconds = started.elapsed().as_secs_f64();

    let frame = push_frame::encode(&cell.record.name, &cell.record.crate_name, &object)
        .map_err(|error| Error(format!("cannot frame {}: {error}", cell.path.display())))?;
    eprintln!(
        "cellbuild: push: sending {} ({} bytes, crate {}) to {}",
        cell.record.object_file,
        object.len(),
        cell.record.crate_name,
        options.socket.display()
    );
    let sent = Instant::now();
    match exchange(&options.socket, &frame, options.reply_timeout)? {
        Reply::Stored { name, .. } => Ok(PushSummary {
            cell: options.cell.clone(),
            stored_as: name,
            object_bytes: object.len(),
            same_crate_hash,
            build_seconds,
            send_seconds: sent.elapsed().as_secs_f64(),
        }),
        Reply::Rejected { reason } => Err(Error(format!("the guest rejected {}: {reason}", cell.record.object_file))),
    }
}

/// Checks that every undefined symbol of cell `record` is defined by the running image (its base symbols or a manifest
/// cell). Returns whether its exports equal the image's manifest entry of the same cell (`None`: no such entry).
///
/// # Errors
/// The image files cannot be read or parsed, or symbols are missing (all are named, mangled and demangled).
fn check_against_image(record: &CellRecord, image_dir: &Path) -> Result<Option<bool>> {
    let syms_path = image_dir.join("nano_core.syms");
    let manifest_path = image_dir.join("cells.manifest");
    let syms_text = std::fs::read_to_string(&syms_path)
        .context(format_args!("{} (the running image's symbols; run `make iso` first)", syms_path.display()))?;
    let manifest_text = std::fs::read_to_string(&manifest_path).context(manifest_path.display())?;
    let base =
        symfile::parse(&syms_text).map_err(|line| Error(format!("{}: malformed line {line}", syms_path.display())))?;
    let cells = manifest::parse(&manifest_text)
        .map_err(|line| Error(format!("{}: malformed line {line}", manifest_path.display())))?;
    let defined: HashSet<&str> = base
        .iter()
        .map(|symbol| symbol.name.as_str())
        .chain(cells.iter().flat_map(|parsed| parsed.symbols.iter().map(String::as_str)))
        .collect();
    let missing = missing_symbols(&record.undefined, &defined);
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|symbol| format!("{symbol} ({})", demangle(symbol))).collect();
        return Err(Error(format!(
            "{} needs {} symbol(s) the running image does not define, so it would not load; not sent \
             (rebuild and reboot the image: `make iso`, `make run`):\n  {}",
            record.object_file,
            missing.len(),
            list.join("\n  ")
        )));
    }
    let image_entry = cells.iter().find(|parsed| parsed.fields[0] == record.name);
    Ok(image_entry.map(|entry| {
        let mut image_symbols = entry.symbols.clone();
        image_symbols.sort();
        let mut pushed: Vec<String> = record.defined.iter().map(|symbol| symbol.name.clone()).collect();
        pushed.sort();
        image_symbols == pushed
    }))
}

/// The symbols of `undefined` that `defined` lacks, in order.
pub fn missing_symbols<'a>(undefined: &'a [String], defined: &HashSet<&str>) -> Vec<&'a str> {
    undefined.iter().map(String::as_str).filter(|symbol| !defined.contains(symbol)).collect()
}

/// Sends `frame` (or any bytes) to the guest's COM2 socket and returns the guest's first reply line.
///
/// # Errors
/// The socket cannot be reached or written, or no reply line arrives within `timeout`.
pub fn exchange(socket: &Path, frame: &[u8], timeout: Duration) -> Result<Reply> {
    let mut stream = UnixStream::connect(socket).context(format_args!(
        "cannot connect to {} (is the guest running with its second serial port there? `make run` does that)",
        socket.display()
    ))?;
    stream.set_read_timeout(Some(timeout)).context("socket")?;
    stream.write_all(frame).context(format_args!("writing to {}", socket.display()))?;
    stream.flush().context("socket")?;
    let mut reader = BufReader::new(stream);
    let deadline = Instant::now() + timeout;
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|error| Error(format!("no reply from the guest within {} s ({error})", timeout.as_secs())))?;
        if read == 0 {
            return Err(Error("the guest's socket closed before a reply".into()));
        }
        if let Some(reply) = Reply::parse(&line) {
            return Ok(reply);
        }
    }
    Err(Error(format!("no reply from the guest within {} s", timeout.as_secs())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_symbols_are_listed_in_order() {
        let undefined = vec!["a".to_string(), "b".into(), "c".into()];
        let defined: HashSet<&str> = ["b"].into_iter().collect();
        assert_eq!(missing_symbols(&undefined, &defined), ["a", "c"]);
    }

    fn record(defined: &[&str], undefined: &[&str]) -> CellRecord {
        CellRecord {
            name: "greeting_v2".into(),
            kind: CellKind::Kernel,
            object_file: "k-greeting_v2.o".into(),
            crate_name: "greeting".into(),
            defined: defined.iter().map(|s| crate::elf::DefinedSymbol { name: s.to_string(), weak: false }).collect(),
            undefined: undefined.iter().map(|s| s.to_string()).collect(),
            cargo_dependencies: Vec::new(),
            allocated_bytes: 0,
            relocations: 0,
        }
    }

    #[test]
    fn objects_are_checked_against_the_running_image() {
        let dir = std::env::temp_dir().join(format!("cellbuild-image-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("nano_core.syms"), "ffffffff80100000 10 T _RNvCs1_5alloc3fmt6format\n").unwrap();
        std::fs::write(
            dir.join("cells.manifest"),
            "cell greeting_v2 kernel k-greeting_v2.o greeting\ndep nano_core\nsym _RNvCs2_8greeting5greet\n\
             cell logger kernel k-logger.o logger\nsym _RNvCs3_6logger3log\n",
        )
        .unwrap();
        let same = record(&["_RNvCs2_8greeting5greet"], &["_RNvCs1_5alloc3fmt6format", "_RNvCs3_6logger3log"]);
        assert_eq!(check_against_image(&same, &dir), Ok(Some(true)));
        let other_hash = record(&["_RNvCs9_8greeting5greet"], &[]);
        assert_eq!(check_against_image(&other_hash, &dir), Ok(Some(false)));
        let error = check_against_image(&record(&[], &["_RNvCs7_4core3fmt5write"]), &dir).unwrap_err();
        assert!(error.0.contains("_RNvCs7_4core3fmt5write") && error.0.contains("not sent"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn exchange_sends_the_frame_and_reads_the_reply() {
        let dir = std::env::temp_dir().join(format!("cellbuild-push-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("guest.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let guest = std::thread::spawn(move || {
            let (mut connection, _) = listener.accept().unwrap();
            let mut received = vec![0_u8; 5];
            std::io::Read::read_exact(&mut connection, &mut received).unwrap();
            connection.write_all(b"noise from the guest\nack greeting_v2@2 5\n").unwrap();
            received
        });
        let reply = exchange(&socket, b"FRAME", Duration::from_secs(10)).unwrap();
        assert_eq!(reply, Reply::Stored { name: "greeting_v2@2".into(), bytes: 5 });
        assert_eq!(guest.join().unwrap(), b"FRAME");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
