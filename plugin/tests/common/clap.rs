//! A minimal but honest CLAP host on clack-host 0.2: loads the built `.clap`, queries the
//! latency/params/state/audio-ports extensions, runs audio on its own thread while the main
//! thread services the plugin's main-thread callbacks, like a DAW does.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::CString;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use clack_extensions::audio_ports::{AudioPortInfoBuffer, PluginAudioPorts};
use clack_extensions::audio_ports_config::{AudioPortsConfigBuffer, PluginAudioPortsConfig};
use clack_extensions::gui::{GuiApiType, GuiConfiguration, PluginGui};
use clack_extensions::latency::{HostLatency, HostLatencyImpl, PluginLatency};
use clack_extensions::params::{
    HostParams, HostParamsImplMainThread, HostParamsImplShared, ParamClearFlags, ParamInfoBuffer, ParamInfoFlags,
    ParamRescanFlags, PluginParams,
};
use clack_extensions::render::{PluginRender, RenderMode};
use clack_extensions::state::{HostState, HostStateImpl, PluginState};
use clack_host::events::event_types::ParamValueEvent;
use clack_host::prelude::*;

pub const PLUGIN_ID: &str = "org.isola.vocal-isolator";

#[derive(Clone, Copy)]
pub struct Exts {
    pub latency: Option<PluginLatency>,
    pub params: Option<PluginParams>,
    pub state: Option<PluginState>,
    pub audio_ports: Option<PluginAudioPorts>,
    pub ports_config: Option<PluginAudioPortsConfig>,
    pub gui: Option<PluginGui>,
    pub render: Option<PluginRender>,
}

#[derive(Default)]
pub struct Shared {
    pub restart_requested: AtomicBool,
    pub callback_requested: AtomicBool,
    pub process_requested: AtomicBool,
    pub flush_requested: AtomicBool,
    exts: OnceLock<Exts>,
}

// SAFETY: the extension handles are plain pointers to the plugin's static vtables, valid for
// the instance's lifetime, and CLAP allows calling them from the threads the methods document.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

impl<'a> SharedHandler<'a> for Shared {
    fn initializing(&self, instance: InitializingPluginHandle<'a>) {
        let _ = self.exts.set(Exts {
            latency: instance.get_extension(),
            params: instance.get_extension(),
            state: instance.get_extension(),
            audio_ports: instance.get_extension(),
            ports_config: instance.get_extension(),
            gui: instance.get_extension(),
            render: instance.get_extension(),
        });
    }
    fn request_restart(&self) {
        self.restart_requested.store(true, Ordering::SeqCst);
    }
    fn request_process(&self) {
        self.process_requested.store(true, Ordering::SeqCst);
    }
    fn request_callback(&self) {
        self.callback_requested.store(true, Ordering::SeqCst);
    }
}

impl HostParamsImplShared for Shared {
    fn request_flush(&self) {
        self.flush_requested.store(true, Ordering::SeqCst);
    }
}

pub struct MainThread<'a> {
    _shared: &'a Shared,
    pub latency_changes: Cell<u32>,
    pub rescans: Cell<u32>,
    pub dirty: Cell<bool>,
}

impl<'a> MainThreadHandler<'a> for MainThread<'a> {
    fn initialized(&self, _instance: InitializedPluginHandle<'a>) {}
}

impl HostLatencyImpl for MainThread<'_> {
    fn changed(&self) {
        self.latency_changes.set(self.latency_changes.get() + 1);
    }
}

impl HostParamsImplMainThread for MainThread<'_> {
    fn rescan(&self, _flags: ParamRescanFlags) {
        self.rescans.set(self.rescans.get() + 1);
    }
    fn clear(&self, _param_id: ClapId, _flags: ParamClearFlags) {}
}

impl HostStateImpl for MainThread<'_> {
    fn mark_dirty(&self) {
        self.dirty.set(true);
    }
}

pub struct Host;

impl HostHandlers for Host {
    type Shared<'a> = Shared;
    type MainThread<'a> = MainThread<'a>;
    type AudioProcessor<'a> = ();

    fn declare_extensions(builder: &mut HostExtensions<Self>, _shared: &Self::Shared<'_>) {
        builder.register::<HostLatency>().register::<HostParams>().register::<HostState>();
    }
}

/// One parameter as the host sees it (CLAP values: `min..=max`, whole numbers when stepped).
#[derive(Clone, Debug)]
pub struct ParamSpec {
    pub name: String,
    pub id: ClapId,
    pub min: f64,
    pub max: f64,
    pub stepped: bool,
    pub automatable: bool,
}

/// Output of a processing run: per port, per channel, all samples.
#[derive(Default, Clone)]
pub struct Rendered {
    pub main: Vec<Vec<f32>>,
    pub vocals: Vec<Vec<f32>>,
    pub accompaniment: Vec<Vec<f32>>,
}

pub struct Plugin {
    pub instance: PluginInstance<Host>,
    /// Parameter IDs by display name.
    pub params: HashMap<String, ClapId>,
    _entry: PluginEntry,
}

impl Plugin {
    /// Loads `Isola` from a `.clap` file and instantiates it.
    pub fn load(path: &Path) -> Self {
        // SAFETY: loading our own freshly built plugin library.
        let entry =
            unsafe { PluginEntry::load(path) }.unwrap_or_else(|e| panic!("cannot load {}: {e:?}", path.display()));
        let factory = entry.get_plugin_factory().expect("no plugin factory");
        let id = CString::new(PLUGIN_ID).unwrap();
        let found = factory.plugin_descriptors().any(|d| d.id().is_some_and(|i| i == id.as_c_str()));
        assert!(found, "{PLUGIN_ID} not in the factory");
        let host_info = HostInfo::new("isola-test-host", "isola", "https://example.invalid", "0.1").unwrap();
        let instance = PluginInstance::<Host>::new(
            |_| Shared::default(),
            |shared| MainThread {
                _shared: shared,
                latency_changes: Cell::new(0),
                rescans: Cell::new(0),
                dirty: Cell::new(false),
            },
            &entry,
            &id,
            &host_info,
        )
        .expect("instantiating the plugin failed");
        let mut p = Self { instance, params: HashMap::new(), _entry: entry };
        p.params = p.param_ids();
        p
    }

    pub fn exts(&self) -> Exts {
        *self.instance.access_shared_handler(|s| s.exts.get()).expect("plugin not initialised")
    }

    fn param_ids(&mut self) -> HashMap<String, ClapId> {
        let params = self.exts().params.expect("plugin has no params extension");
        let handle = self.instance.plugin_handle();
        let mut out = HashMap::new();
        for i in 0..params.count(&handle) {
            let mut buf = ParamInfoBuffer::new();
            let info = params.get_info(&handle, i, &mut buf).expect("param info");
            out.insert(String::from_utf8_lossy(info.name).into_owned(), info.id);
        }
        out
    }

    /// Every parameter as the host's params extension describes it, in the plugin's order.
    pub fn param_specs(&mut self) -> Vec<ParamSpec> {
        let params = self.exts().params.expect("plugin has no params extension");
        let handle = self.instance.plugin_handle();
        (0..params.count(&handle))
            .map(|i| {
                let mut buf = ParamInfoBuffer::new();
                let info = params.get_info(&handle, i, &mut buf).expect("param info");
                ParamSpec {
                    name: String::from_utf8_lossy(info.name).into_owned(),
                    id: info.id,
                    min: info.min_value,
                    max: info.max_value,
                    stepped: info.flags.contains(ParamInfoFlags::IS_STEPPED),
                    automatable: info.flags.contains(ParamInfoFlags::IS_AUTOMATABLE),
                }
            })
            .collect()
    }

    pub fn id(&self, name: &str) -> ClapId {
        *self.params.get(name).unwrap_or_else(|| panic!("no parameter '{name}' (have {:?})", self.params.keys()))
    }

    /// The CLAP value for a text entry, through the plugin's own parser.
    pub fn text_to_value(&mut self, name: &str, text: &str) -> f64 {
        let id = self.id(name);
        let params = self.exts().params.unwrap();
        let text = CString::new(text).unwrap();
        params
            .text_to_value(&self.instance.plugin_handle(), id, &text)
            .unwrap_or_else(|| panic!("'{name}' rejected text {text:?}"))
    }

    pub fn value_to_text(&mut self, name: &str, value: f64) -> String {
        let id = self.id(name);
        let params = self.exts().params.unwrap();
        let mut buf = [0u8; 256];
        let s = params.value_to_text(&self.instance.plugin_handle(), id, value, &mut buf).expect("value_to_text");
        String::from_utf8_lossy(s).trim_end_matches('\0').to_owned()
    }

    /// The current value as the plugin displays it.
    pub fn text(&mut self, name: &str) -> String {
        let v = self.value(name);
        self.value_to_text(name, v)
    }

    pub fn value(&mut self, name: &str) -> f64 {
        let id = self.id(name);
        let params = self.exts().params.unwrap();
        params.get_value(&self.instance.plugin_handle(), id).expect("get_value")
    }

    /// Every parameter's current value, by name.
    pub fn all_values(&mut self) -> Vec<(String, f64)> {
        let mut names: Vec<String> = self.params.keys().cloned().collect();
        names.sort();
        names.into_iter().map(|n| (n.clone(), self.value(&n))).collect()
    }

    /// The editor as a host sees it before creating it (creating one opens an X connection):
    /// X11 embedding supported, resizable, and its size.
    pub fn editor_info(&mut self) -> (bool, bool, Option<(u32, u32)>) {
        let gui = self.exts().gui.expect("plugin has no gui extension");
        let h = self.instance.plugin_handle();
        let supported = gui.is_api_supported(&h, GuiConfiguration { api_type: GuiApiType::X11, is_floating: false });
        let size = gui.get_size(&h).map(|s| (s.width, s.height));
        (supported, gui.can_resize(&h), size)
    }

    /// Switches between real-time and offline rendering (CLAP render extension).
    pub fn set_offline(&mut self, offline: bool) {
        let render = self.exts().render.expect("plugin has no render extension");
        let mode = if offline { RenderMode::Offline } else { RenderMode::Realtime };
        render.set(&self.instance.plugin_handle(), mode).expect("render mode refused");
    }

    pub fn latency(&mut self) -> u32 {
        let lat = self.exts().latency.expect("plugin has no latency extension");
        lat.get(&self.instance.plugin_handle())
    }

    /// Selects the audio ports configuration named `name` ("Stereo"/"Mono"). Plugin inactive.
    pub fn select_layout(&mut self, name: &str) {
        let cfg = self.exts().ports_config.expect("no audio-ports-config extension");
        let handle = self.instance.plugin_handle();
        for i in 0..cfg.count(&handle) {
            let mut buf = AudioPortsConfigBuffer::new();
            let c = cfg.get(&handle, i, &mut buf).expect("ports config");
            if c.name == name.as_bytes() {
                let id = c.id;
                cfg.select(&handle, id).expect("selecting the layout failed");
                return;
            }
        }
        panic!("no audio ports configuration named {name}");
    }

    /// (name, channel count) of every output port.
    pub fn output_ports(&mut self) -> Vec<(String, u32)> {
        let ports = self.exts().audio_ports.expect("no audio-ports extension");
        let handle = self.instance.plugin_handle();
        (0..ports.count(&handle, false))
            .map(|i| {
                let mut buf = AudioPortInfoBuffer::new();
                let p = ports.get(&handle, i, false, &mut buf).expect("port info");
                (String::from_utf8_lossy(p.name).into_owned(), p.channel_count)
            })
            .collect()
    }

    pub fn save_state(&mut self) -> Vec<u8> {
        let state = self.exts().state.expect("no state extension");
        let mut out = Vec::new();
        state.save(&self.instance.plugin_handle(), &mut out).expect("state save failed");
        out
    }

    pub fn load_state(&mut self, blob: &[u8]) -> bool {
        let state = self.exts().state.expect("no state extension");
        let mut reader = std::io::Cursor::new(blob);
        let ok = state.load(&self.instance.plugin_handle(), &mut reader).is_ok();
        self.pump();
        ok
    }

    /// Runs the plugin's pending main-thread callback, as a host event loop would.
    pub fn pump(&mut self) {
        let requested = self.instance.access_shared_handler(|s| s.callback_requested.swap(false, Ordering::SeqCst));
        if requested {
            self.instance.call_on_main_thread_callback();
        }
    }

    pub fn restart_requested(&self) -> bool {
        self.instance.access_shared_handler(|s| s.restart_requested.swap(false, Ordering::SeqCst))
    }

    pub fn latency_changes(&mut self) -> u32 {
        self.instance.access_handler(|h| h.latency_changes.get())
    }

    /// Activates and starts processing. Like a DAW, honours a restart request made during
    /// activation (nice-plug asks for one when the latency changed, so the host re-queries it)
    /// by deactivating and activating again.
    pub fn activate(&mut self, sample_rate: f64, max_block: u32, channels: usize) -> Processor {
        let _ = self.restart_requested();
        let mut p = self.activate_once(sample_rate, max_block, channels);
        if self.restart_requested() {
            self.deactivate(p);
            p = self.activate_once(sample_rate, max_block, channels);
            assert!(!self.restart_requested(), "plugin asked for a restart twice in a row");
        }
        p
    }

    fn activate_once(&mut self, sample_rate: f64, max_block: u32, channels: usize) -> Processor {
        let stopped = self
            .instance
            .activate(
                |_, _| (),
                PluginAudioConfiguration { sample_rate, min_frames_count: 1, max_frames_count: max_block },
            )
            .expect("activation failed");
        self.pump();
        let started = stopped.start_processing().expect("start_processing failed");
        Processor {
            proc: Some(started),
            channels,
            in_ports: AudioPorts::with_capacity(channels, 1),
            out_ports: AudioPorts::with_capacity(channels * 3, 3),
            input: vec![Vec::new(); channels],
            outputs: vec![Vec::new(); channels * 3],
            events: EventBuffer::with_capacity(256),
            out_events: EventBuffer::with_capacity(256),
            steady_time: 0,
            output_ports: 3,
        }
    }

    pub fn deactivate(&mut self, mut p: Processor) {
        let started = p.proc.take().unwrap();
        self.instance.deactivate(started.stop_processing());
        self.pump();
    }

    /// Runs `f` with the processor on a separate audio thread while this (main) thread keeps
    /// servicing main-thread callbacks, then hands the processor back.
    pub fn on_audio_thread<R: Send>(
        &mut self,
        mut p: Processor,
        f: impl FnOnce(&mut Processor) -> R + Send,
    ) -> (Processor, R) {
        let done = AtomicBool::new(false);
        let result = std::thread::scope(|s| {
            let handle = s.spawn(|| {
                let r = f(&mut p);
                done.store(true, Ordering::SeqCst);
                r
            });
            while !done.load(Ordering::SeqCst) {
                self.pump();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            handle.join().expect("audio thread panicked")
        });
        self.pump();
        (p, result)
    }
}

/// A parameter change at an absolute sample position of a run.
#[derive(Clone, Copy, Debug)]
pub struct ParamChange {
    pub at: usize,
    pub id: ClapId,
    pub value: f64,
}

pub struct Processor {
    proc: Option<StartedPluginAudioProcessor<Host>>,
    pub channels: usize,
    in_ports: AudioPorts,
    out_ports: AudioPorts,
    input: Vec<Vec<f32>>,
    outputs: Vec<Vec<f32>>,
    events: EventBuffer,
    out_events: EventBuffer,
    steady_time: u64,
    /// How many output ports the host passes (main, Vocals, Accompaniment in that order): a
    /// host may offer fewer than the plugin declares. The buffers of ports not offered keep
    /// their NaN fill, so a plugin writing to them is caught.
    pub output_ports: usize,
}

// The clack processor is Send; the buffers are plain data.
unsafe impl Send for Processor {}

impl Processor {
    /// Processes one block. `input[c]` has the block's samples; parameter changes carry
    /// block-relative times. Output buffers are pre-filled with NaN so an output the plugin
    /// forgets to write is caught by the finiteness checks.
    pub fn block(&mut self, input: &[&[f32]], changes: &[(u32, ClapId, f64)], out: &mut Rendered) -> ProcessStatus {
        let n = input[0].len();
        for c in 0..self.channels {
            self.input[c].clear();
            self.input[c].extend_from_slice(input[c.min(input.len() - 1)]);
        }
        for o in &mut self.outputs {
            o.clear();
            o.resize(n, f32::NAN);
        }
        self.events.clear();
        for &(t, id, v) in changes {
            self.events.push(&ParamValueEvent::new(t, id, Pckn::match_all(), v));
        }
        self.out_events.clear();
        let ch = self.channels;
        let status = {
            let input_bufs = self.in_ports.with_input_buffers([AudioPortBuffer {
                latency: 0,
                channels: AudioPortBufferType::f32_input_only(
                    self.input.iter_mut().map(|b| InputChannel::variable(b.as_mut_slice())),
                ),
            }]);
            let (main, rest) = self.outputs.split_at_mut(ch);
            let (voc, acc) = rest.split_at_mut(ch);
            let mut output_bufs =
                self.out_ports.with_output_buffers([main, voc, acc].into_iter().take(self.output_ports).map(|port| {
                    AudioPortBuffer {
                        latency: 0,
                        channels: AudioPortBufferType::f32_output_only(port.iter_mut().map(|b| b.as_mut_slice())),
                    }
                }));
            let in_events = InputEvents::from_buffer(&self.events);
            let mut out_events = OutputEvents::from_buffer(&mut self.out_events);
            self.proc
                .as_mut()
                .unwrap()
                .process(&input_bufs, &mut output_bufs, &in_events, &mut out_events, Some(self.steady_time), None)
                .expect("process failed")
        };
        self.steady_time += n as u64;
        for (dst, src) in
            [&mut out.main, &mut out.vocals, &mut out.accompaniment].into_iter().zip(self.outputs.chunks(ch))
        {
            dst.resize(ch, Vec::new());
            for c in 0..ch {
                dst[c].extend_from_slice(&src[c]);
            }
        }
        status
    }

    /// Processes `input` (per channel, all samples) in blocks of the given sizes (cycled),
    /// applying `changes` at their absolute sample positions (sorted).
    pub fn run(&mut self, input: &[Vec<f32>], sizes: &[usize], changes: &[ParamChange]) -> Rendered {
        let len = input[0].len();
        let mut out = Rendered::default();
        let mut pos = 0;
        let mut k = 0;
        let mut ci = 0;
        let mut block_changes = Vec::new();
        while pos < len {
            let n = sizes[k % sizes.len()].min(len - pos);
            k += 1;
            block_changes.clear();
            while ci < changes.len() && changes[ci].at < pos + n {
                let c = changes[ci];
                block_changes.push(((c.at.max(pos) - pos) as u32, c.id, c.value));
                ci += 1;
            }
            let slices: Vec<&[f32]> = input.iter().map(|c| &c[pos..pos + n]).collect();
            self.block(&slices, &block_changes, &mut out);
            pos += n;
        }
        out
    }

    pub fn reset(&mut self) {
        self.proc.as_mut().unwrap().reset();
    }
}

/// Loads the freshly built `Isola.clap` bundle.
pub fn load_isola() -> Plugin {
    Plugin::load(&super::bundle("clap"))
}

/// A CLAP state stream as nice-plug writes it: 8-byte little-endian length, then JSON.
pub fn clap_state_blob(json: &str) -> Vec<u8> {
    let mut blob = (json.len() as u64).to_le_bytes().to_vec();
    blob.extend_from_slice(json.as_bytes());
    blob
}
