//! A real sound server of the test's own for the audio tests (`spice_audio`, harness 42): a private instance with
//! its own runtime directory and socket, null sinks `out` (the default sink) and `mic` (whose monitor is the
//! default source), reached through the PulseAudio protocol as the viewer reaches a desktop's server.
//! `VMGPU_SOUND_SERVER` picks it: `pulseaudio` (the default) or `pipewire` (PipeWire + WirePlumber +
//! pipewire-pulse, with a private D-Bus session bus, which WirePlumber needs; the null sinks are loaded through
//! pipewire-pulse with `pactl load-module module-null-sink`, as on a PulseAudio server).
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One running sound server; dropping it stops every process it started.
pub struct SoundServer {
    /// `pulseaudio` or `pipewire`.
    pub kind: String,
    children: Vec<Child>,
    /// The PulseAudio-protocol server string (`unix:…/native`).
    pub server: String,
    dir: tempfile::TempDir,
}

fn null_sink(name: &str) -> String {
    format!("module-null-sink sink_name={name} rate=48000 channels=2 format=s16le")
}

fn spawn(dir: &Path, log: &str, cmd: &mut Command) -> Child {
    let log = std::fs::File::create(dir.join(log)).unwrap();
    cmd.env("HOME", dir)
        .env("XDG_RUNTIME_DIR", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}", dir.join("bus").display()),
        )
        .env_remove("PULSE_SERVER")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} ({e}; tests/install-deps.sh installs it)"))
}

impl SoundServer {
    /// Starts the server `VMGPU_SOUND_SERVER` names (`pulseaudio` when unset).
    pub fn start() -> Self {
        let kind = std::env::var("VMGPU_SOUND_SERVER").unwrap_or_else(|_| "pulseaudio".into());
        let dir = tempfile::tempdir().unwrap();
        let mut s = Self {
            kind: kind.clone(),
            children: Vec::new(),
            server: String::new(),
            dir,
        };
        match kind.as_str() {
            "pulseaudio" => s.start_pulseaudio(),
            "pipewire" => s.start_pipewire(),
            other => panic!("VMGPU_SOUND_SERVER={other}: expected pulseaudio or pipewire"),
        }
        s.wait("the server answers", |s| s.pactl(&["info"]));
        if kind == "pipewire" {
            // Loaded only now: pipewire-pulse takes modules once it runs.
            for name in ["out", "mic"] {
                let args: Vec<String> = ["load-module".to_string()]
                    .into_iter()
                    .chain(null_sink(name).split(' ').map(str::to_string))
                    .collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                assert!(s.pactl(&args), "pactl load-module {name}");
            }
        }
        // WirePlumber makes the default-node metadata a moment after it starts: retry until it takes.
        s.wait("the default sink is set", |s| {
            s.pactl(&["set-default-sink", "out"])
        });
        s.wait("the default source is set", |s| {
            s.pactl(&["set-default-source", "mic.monitor"])
        });
        s
    }

    fn wait(&self, what: &str, ok: impl Fn(&Self) -> bool) {
        let end = Instant::now() + Duration::from_secs(20);
        while !ok(self) {
            assert!(
                Instant::now() < end,
                "{}: not within 20 s that {what}; logs in {}",
                self.kind,
                self.dir.path().display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn start_pulseaudio(&mut self) {
        let sock = self.dir.path().join("native");
        self.server = format!("unix:{}", sock.display());
        let child = spawn(
            self.dir.path(),
            "pulse.log",
            Command::new("pulseaudio")
                .args([
                    "--daemonize=no",
                    "--exit-idle-time=-1",
                    "-n",
                    "--use-pid-file=no",
                ])
                .args(["-L", &null_sink("out"), "-L", &null_sink("mic")])
                .args([
                    "-L",
                    &format!(
                        "module-native-protocol-unix socket={} auth-anonymous=1",
                        sock.display()
                    ),
                ]),
        );
        self.children.push(child);
    }

    fn start_pipewire(&mut self) {
        let dir = self.dir.path().to_path_buf();
        self.server = format!("unix:{}", dir.join("pulse").join("native").display());
        let bus = format!("unix:path={}", dir.join("bus").display());
        self.children.push(spawn(
            &dir,
            "dbus.log",
            Command::new("dbus-daemon").args([
                "--session",
                "--nofork",
                "--nopidfile",
                &format!("--address={bus}"),
            ]),
        ));
        let end = Instant::now() + Duration::from_secs(10);
        while !dir.join("bus").exists() {
            assert!(Instant::now() < end, "dbus-daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.children
            .push(spawn(&dir, "pipewire.log", &mut Command::new("pipewire")));
        let end = Instant::now() + Duration::from_secs(10);
        while !dir.join("pipewire-0").exists() {
            assert!(Instant::now() < end, "pipewire did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.children.push(spawn(
            &dir,
            "wireplumber.log",
            &mut Command::new("wireplumber"),
        ));
        self.children.push(spawn(
            &dir,
            "pipewire-pulse.log",
            &mut Command::new("pipewire-pulse"),
        ));
    }

    /// `pactl ARGS` against this server: true when it succeeded.
    pub fn pactl(&self, args: &[&str]) -> bool {
        Command::new("pactl")
            .args(["-s", &self.server])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `parec`/`pacat` on `device` as raw S16LE stereo 48 kHz with 5 ms latency.
    pub fn tool(&self, name: &str, device: &str) -> Command {
        let mut c = Command::new(name);
        c.args(["-s", &self.server, "-d", device, "--raw", "--format=s16le"])
            .args(["--rate=48000", "--channels=2", "--latency-msec=5"]);
        c
    }
}

impl Drop for SoundServer {
    fn drop(&mut self) {
        // The clients' server first (pipewire-pulse, then WirePlumber, PipeWire, the bus).
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
