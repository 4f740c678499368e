//! `vmgpu view`: show a VM's screen from its Looking Glass shared memory (found from the domain, or `--shm`),
//! or run the built-in producer with a moving scene (`--demo`).
use std::path::Path;

use crate::cli::ViewArgs;
use crate::report::{EXIT_ERROR, ExitError, Outcome};

/// Runs `vmgpu view`.
pub(crate) fn run(_root: &Path, args: &ViewArgs) -> anyhow::Result<Outcome> {
    #[cfg(feature = "viewer")]
    {
        window::run(args)
    }
    #[cfg(not(feature = "viewer"))]
    {
        let _ = args;
        Err(ExitError::new(
            EXIT_ERROR,
            "this vmgpu was built without the `viewer` feature",
        )
        .into())
    }
}

/// The shared-memory path for a VM: from its domain XML (read-only libvirt lookup).
#[cfg(feature = "viewer")]
fn shm_for_vm(vm: &str, uri: &str) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    let xml = domain_xml(vm, uri)?;
    let loc = crate::viewer::locate::from_domain_xml(&xml).with_context(|| format!("VM {vm}"))?;
    Ok(loc.path)
}

#[cfg(all(feature = "viewer", feature = "libvirt"))]
fn domain_xml(vm: &str, uri: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    let libvirt = crate::libvirt::Libvirt::open(uri)
        .context("looking up the VM's shared memory (or pass --shm PATH)")?;
    libvirt
        .inactive_xml(vm)?
        .ok_or_else(|| ExitError::new(EXIT_ERROR, format!("no VM named {vm} at {uri}")).into())
}

#[cfg(all(feature = "viewer", not(feature = "libvirt")))]
fn domain_xml(_vm: &str, _uri: &str) -> anyhow::Result<String> {
    Err(ExitError::new(EXIT_ERROR, "built without libvirt: pass --shm PATH").into())
}

#[cfg(feature = "viewer")]
#[path = "view_spice.rs"]
mod spice;

#[cfg(feature = "viewer")]
mod window {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use anyhow::Context;

    use super::*;
    use crate::lg::producer::{Producer, ProducerConfig};
    use crate::lg::scene::DemoScene;
    use crate::shm::ShmMap;
    use crate::viewer::feed::Source;
    use crate::viewer::instance::{self, Claim};
    use crate::viewer::observe;
    use crate::viewer::window::{self, Options};

    pub(super) fn run(args: &ViewArgs) -> anyhow::Result<Outcome> {
        if args.demo {
            return demo(args);
        }
        let (path, name) = match (&args.shm, &args.vm) {
            (Some(p), vm) => (
                p.clone(),
                vm.clone().unwrap_or_else(|| p.display().to_string()),
            ),
            (None, Some(vm)) => (super::shm_for_vm(vm, &args.connect)?, vm.clone()),
            (None, None) => {
                return Err(
                    ExitError::new(EXIT_ERROR, "name a VM, or give --shm PATH or --demo").into(),
                );
            }
        };
        if args.shm.is_some() {
            shm_preflight(&path)?;
        }
        let spice = super::spice::config(args, args.vm.as_deref())?;
        // One viewer per VM (or file) and user: a second launch raises the first and exits.
        let key = args.vm.clone().unwrap_or_else(|| {
            std::fs::canonicalize(&path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string()
        });
        let instance = match instance::claim(&key) {
            Ok(Claim::First(i)) => Some(Arc::new(i)),
            Ok(Claim::Raised) => {
                eprintln!(
                    "vmgpu view: {name} is already shown in a window; brought it to the front"
                );
                return Ok(Outcome::Ok);
            }
            Err(e @ instance::Error::NotAnswering { .. }) => {
                return Err(ExitError::new(EXIT_ERROR, e.to_string()).into());
            }
            Err(e) => {
                eprintln!(
                    "vmgpu view: {}; a second `vmgpu view` for {name} will open another window",
                    crate::report::chain_one_line(&anyhow::Error::new(e))
                );
                None
            }
        };
        // A harness's view of the window (VMGPU_VIEW_TEST), or none.
        let (placement, observer) = observe::from_env();
        let opts = Options {
            name,
            fullscreen: args.fullscreen,
            placement,
            observer,
            vm: args.vm.clone(),
            instance,
            remove_on_exit: Vec::new(),
            spice,
        };
        window::run(Source::Path(path), opts).context("vmgpu view")?;
        Ok(Outcome::Ok)
    }

    /// What is wrong with an explicit `--shm` before any window opens: a directory never becomes shared
    /// memory, and without a display a missing file is the first thing to fix (with one, the window waits
    /// for the file, as the VM may be starting).
    fn shm_preflight(path: &Path) -> anyhow::Result<()> {
        let shown = path.display();
        if path.is_dir() {
            let text = format!(
                "--shm {shown} is a directory; give the shared-memory file (e.g. {}) or /dev/kvmfrN",
                crate::domain::write::looking_glass::DEFAULT_SHM_FILE
            );
            return Err(ExitError::new(EXIT_ERROR, text).into());
        }
        let display = ["WAYLAND_DISPLAY", "WAYLAND_SOCKET", "DISPLAY"]
            .iter()
            .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
        if !display && !path.exists() {
            let text = format!(
                "--shm {shown} does not exist (is the VM running?), and there is no display to show it on \
                 (DISPLAY and WAYLAND_DISPLAY are unset): run it in a desktop session"
            );
            return Err(ExitError::new(EXIT_ERROR, text).into());
        }
        Ok(())
    }

    fn demo_path() -> PathBuf {
        let dir = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("vmgpu-demo-{}", std::process::id()))
    }

    fn demo(args: &ViewArgs) -> anyhow::Result<Outcome> {
        let path = demo_path();
        let map = Arc::new(
            ShmMap::create(&path, 32 << 20).context("cannot create the demo shared memory")?,
        );
        let producer = Producer::start(map, ProducerConfig::default()).context("demo producer")?;
        let stop = Arc::new(AtomicBool::new(false));
        let scene_thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut scene = DemoScene::new(1280, 720);
                let mut first = true;
                let mut next = Instant::now();
                while !stop.load(Ordering::Acquire) {
                    if !producer.wait_for_client(Duration::from_millis(100)) {
                        first = true;
                        continue;
                    }
                    let (desc, pixels) = if first {
                        scene.full_frame()
                    } else {
                        scene.next_frame()
                    };
                    if let Err(e) = producer.send_frame(&desc, pixels) {
                        tracing::debug!("demo frame: {e}");
                    }
                    let _ = producer.send_cursor(&scene.cursor(first));
                    first = false;
                    next += Duration::from_micros(16_667);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    if Instant::now() > next + Duration::from_millis(100) {
                        next = Instant::now();
                    }
                }
            })
        };
        // Ctrl+C or SIGTERM close the window cleanly (the file is removed below), or, should that hang, the
        // forced exit removes it.
        let (placement, observer) = observe::from_env();
        let opts = Options {
            name: "demo".into(),
            fullscreen: args.fullscreen,
            placement,
            observer,
            vm: None,
            instance: None,
            remove_on_exit: vec![path.clone()],
            spice: super::spice::config(args, None)?,
        };
        let result = window::run(Source::Path(path.clone()), opts);
        stop.store(true, Ordering::Release);
        let _ = scene_thread.join();
        let _ = crate::ops::files::remove_file(&path);
        result.context("vmgpu view --demo")?;
        Ok(Outcome::Ok)
    }
}
