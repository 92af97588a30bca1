//! Loads the built `Isola.vst3` module like a VST3 host: `ModuleEntry`, `GetPluginFactory`, class
//! info, component instantiation, buses, latency, parameters, and a few processed blocks (debug
//! build: any allocation in `process()` aborts the test).

// Parallel per-channel buffers read clearer with explicit indices.
#![allow(clippy::needless_range_loop)]

mod common;

use std::ffi::{CStr, c_void};
use std::ptr;

use vst3::ComPtr;
use vst3::Interface;
use vst3::Steinberg::Vst::BusDirections_::{kInput, kOutput};
use vst3::Steinberg::Vst::MediaTypes_::kAudio;
use vst3::Steinberg::Vst::ProcessModes_::kRealtime;
use vst3::Steinberg::Vst::SymbolicSampleSizes_::kSample32;
use vst3::Steinberg::Vst::{
    AudioBusBuffers, AudioBusBuffers__type0, BusInfo, IAudioProcessor, IAudioProcessorTrait, IComponent,
    IComponentTrait, IEditController, IEditControllerTrait, ParameterInfo, ProcessData, ProcessSetup,
};
use vst3::Steinberg::{
    FIDString, IBStream, IBStreamTrait, IPluginBaseTrait, IPluginFactory, IPluginFactoryTrait, PClassInfo,
    kResultFalse, kResultOk, tresult,
};

fn utf16(s: &[u16]) -> String {
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    String::from_utf16_lossy(&s[..end])
}

fn c_str(s: &[std::ffi::c_char]) -> String {
    // SAFETY: fixed-size, NUL-terminated C string from the plugin.
    unsafe { CStr::from_ptr(s.as_ptr()) }.to_string_lossy().into_owned()
}

/// dlopens the bundle's module like a host (`ModuleEntry`, `GetPluginFactory`) and creates and
/// initialises the first class's component.
///
/// # Safety
/// The caller keeps `lib` loaded while the returned objects live.
unsafe fn instantiate(lib: &libloading::Library) -> (ComPtr<IPluginFactory>, PClassInfo, ComPtr<IComponent>) {
    unsafe {
        #[cfg(all(unix, not(target_os = "macos")))]
        {
            let entry: libloading::Symbol<unsafe extern "C" fn(*mut c_void) -> bool> =
                lib.get(b"ModuleEntry").expect("ModuleEntry missing");
            assert!(entry(ptr::null_mut()));
        }
        let get_factory: libloading::Symbol<unsafe extern "system" fn() -> *mut c_void> =
            lib.get(b"GetPluginFactory").expect("GetPluginFactory missing");
        let factory = ComPtr::<IPluginFactory>::from_raw(get_factory() as *mut IPluginFactory).expect("null factory");
        assert!(factory.countClasses() >= 1);
        let mut info: PClassInfo = std::mem::zeroed();
        assert_eq!(factory.getClassInfo(0, &mut info), kResultOk);
        let mut obj: *mut c_void = ptr::null_mut();
        let iid = IComponent::IID;
        assert_eq!(
            factory.createInstance(info.cid.as_ptr() as FIDString, iid.as_ptr() as FIDString, &mut obj),
            kResultOk
        );
        let component = ComPtr::<IComponent>::from_raw(obj as *mut IComponent).expect("null component");
        assert_eq!(component.initialize(ptr::null_mut()), kResultOk);
        (factory, info, component)
    }
}

/// dlopens the freshly built `Isola.vst3` module.
fn load_module() -> libloading::Library {
    let module = common::bundle("vst3");
    // SAFETY: our own freshly built module.
    unsafe { libloading::Library::new(&module) }.expect("cannot dlopen the .vst3 module")
}

/// `setActive(0)` and `terminate()`, releases every interface, then `ModuleExit`, as a host
/// does before unloading.
unsafe fn shut_down(
    lib: &libloading::Library,
    factory: ComPtr<IPluginFactory>,
    component: ComPtr<IComponent>,
    controller: ComPtr<IEditController>,
    processor: ComPtr<IAudioProcessor>,
) {
    unsafe {
        assert_eq!(component.setActive(0), kResultOk);
        assert_eq!(component.terminate(), kResultOk);
        drop((processor, controller, component, factory));
        #[cfg(all(unix, not(target_os = "macos")))]
        {
            let exit: libloading::Symbol<unsafe extern "C" fn() -> bool> =
                lib.get(b"ModuleExit").expect("ModuleExit missing");
            assert!(exit());
        }
    }
}

/// `setupProcessing` (real time, 32-bit) and `setActive(1)`; returns the reported latency.
unsafe fn setup_and_activate(
    component: &ComPtr<IComponent>,
    processor: &ComPtr<IAudioProcessor>,
    sample_rate: f64,
    block: usize,
) -> usize {
    let mut setup = ProcessSetup {
        processMode: kRealtime as i32,
        symbolicSampleSize: kSample32 as i32,
        maxSamplesPerBlock: block as i32,
        sampleRate: sample_rate,
    };
    unsafe {
        assert_eq!(processor.setupProcessing(&mut setup), kResultOk);
        assert_eq!(component.setActive(1), kResultOk);
        processor.getLatencySamples() as usize
    }
}

#[test]
fn vst3_factory_component_and_processing() {
    let lib = load_module();

    unsafe {
        let (factory, info, component) = instantiate(&lib);
        assert_eq!(c_str(&info.name), "Isola");
        assert_eq!(c_str(&info.category), "Audio Module Class");

        // Buses: stereo in; main, Vocals and Accompaniment out.
        assert_eq!(component.getBusCount(kAudio as i32, kInput as i32), 1);
        assert_eq!(component.getBusCount(kAudio as i32, kOutput as i32), 3);
        let mut names = Vec::new();
        for i in 0..3 {
            let mut bus: BusInfo = std::mem::zeroed();
            assert_eq!(component.getBusInfo(kAudio as i32, kOutput as i32, i, &mut bus), kResultOk);
            assert_eq!(bus.channelCount, 2);
            names.push(utf16(&bus.name));
            assert_eq!(component.activateBus(kAudio as i32, kOutput as i32, i, 1), kResultOk);
        }
        assert_eq!(names[1..], ["Vocals".to_owned(), "Accompaniment".to_owned()]);

        let controller = component.cast::<IEditController>().expect("no IEditController");
        // Output, two levels, Strength, Mix, Bypass, Latency, Quality, Worker budget.
        assert_eq!(controller.getParameterCount(), 9);

        let processor = component.cast::<IAudioProcessor>().expect("no IAudioProcessor");
        let block = 512usize;
        let latency = setup_and_activate(&component, &processor, 48_000.0, block);
        let w = isola_engine::embedded::light().unwrap();
        let mut sep = isola_engine::rt::Separator::new(isola_engine::rt::RtMaskNet::new(&w).unwrap());
        sep.prepare(48_000.0, block, 2).unwrap();
        assert_eq!(latency, sep.latency_samples(), "VST3 latency differs from the engine's");
        assert_eq!(processor.setProcessing(1), kResultOk);

        let blocks = 100;
        let input = common::mixture(48_000.0, block * blocks);
        let mut rendered: Vec<Vec<f32>> = vec![Vec::new(); 6];
        for b in 0..blocks {
            let slice = [&input[0][b * block..(b + 1) * block], &input[1][b * block..(b + 1) * block]];
            let out = process_block(&processor, &slice, 3, [true; 3]);
            for (r, o) in rendered.iter_mut().zip(out.iter().flatten()) {
                r.extend_from_slice(o);
            }
        }
        for (k, r) in rendered.iter().enumerate() {
            assert!(r.iter().all(|x| x.is_finite()), "VST3 output {k} not finite");
        }
        // Stems sum to the delayed input; the main output is not silent.
        for c in 0..2 {
            for i in latency..rendered[0].len() {
                let sum = rendered[2 + c][i] + rendered[4 + c][i];
                assert!((sum - input[c][i - latency]).abs() < 1e-4, "ch {c} sample {i}");
            }
            assert!(common::rms(&rendered[c][latency..]) > 1e-3, "VST3 main output silent");
        }

        assert_eq!(processor.setProcessing(0), kResultOk);
        shut_down(&lib, factory, component, controller, processor);
    }
    // Unloading is safe: the library is linked `-z nodelete` (see plugin/build.rs).
    drop(lib);
}

/// An in-memory `IBStream` for `IComponent::getState`.
struct MemStream(std::cell::RefCell<Vec<u8>>);

impl vst3::Class for MemStream {
    type Interfaces = (IBStream,);
}

impl IBStreamTrait for MemStream {
    unsafe fn read(&self, _buffer: *mut c_void, _n: i32, read: *mut i32) -> tresult {
        if !read.is_null() {
            unsafe { *read = 0 };
        }
        kResultFalse
    }
    unsafe fn write(&self, buffer: *mut c_void, n: i32, written: *mut i32) -> tresult {
        let bytes = unsafe { std::slice::from_raw_parts(buffer as *const u8, n.max(0) as usize) };
        self.0.borrow_mut().extend_from_slice(bytes);
        if !written.is_null() {
            unsafe { *written = n };
        }
        kResultOk
    }
    unsafe fn seek(&self, _pos: i64, _mode: i32, result: *mut i64) -> tresult {
        if !result.is_null() {
            unsafe { *result = self.0.borrow().len() as i64 };
        }
        kResultOk
    }
    unsafe fn tell(&self, pos: *mut i64) -> tresult {
        unsafe { *pos = self.0.borrow().len() as i64 };
        kResultOk
    }
}

/// The component's saved state as JSON (nice-plug writes the JSON itself into the stream).
unsafe fn saved_state(component: &ComPtr<IComponent>) -> serde_json::Value {
    let stream = vst3::ComWrapper::new(MemStream(Default::default()));
    let ptr = stream.to_com_ptr::<IBStream>().unwrap();
    assert_eq!(unsafe { component.getState(ptr.as_ptr()) }, kResultOk);
    let bytes = stream.0.borrow().clone();
    let start = bytes.iter().position(|&b| b == b'{').expect("no JSON in the state");
    serde_json::from_slice(&bytes[start..]).expect("state is not JSON")
}

/// A host's process call with 32-bit stereo input and output buses as given: `active[k]` =
/// whether output bus k gets buffers (an inactive bus gets 0 channels and no pointers, as JUCE
/// hosts pass it), `buses` = numOutputs. Returns each output bus's channels.
unsafe fn process_block(
    processor: &ComPtr<IAudioProcessor>,
    input: &[&[f32]; 2],
    buses: usize,
    active: [bool; 3],
) -> Vec<Vec<Vec<f32>>> {
    let n = input[0].len();
    let mut ins: Vec<Vec<f32>> = input.iter().map(|c| c.to_vec()).collect();
    let mut outs: Vec<Vec<f32>> = vec![vec![f32::NAN; n]; 6];
    let mut in_ptrs: Vec<*mut f32> = ins.iter_mut().map(|c| c.as_mut_ptr()).collect();
    let mut out_ptrs: Vec<*mut f32> = outs.iter_mut().map(|c| c.as_mut_ptr()).collect();
    let mut in_bus = [AudioBusBuffers {
        numChannels: 2,
        silenceFlags: 0,
        __field0: AudioBusBuffers__type0 { channelBuffers32: in_ptrs.as_mut_ptr() },
    }];
    let mut out_bus: Vec<AudioBusBuffers> = (0..buses)
        .map(|k| AudioBusBuffers {
            numChannels: if active[k] { 2 } else { 0 },
            silenceFlags: 0,
            __field0: AudioBusBuffers__type0 {
                channelBuffers32: if active[k] { unsafe { out_ptrs.as_mut_ptr().add(2 * k) } } else { ptr::null_mut() },
            },
        })
        .collect();
    let mut data = ProcessData {
        processMode: kRealtime as i32,
        symbolicSampleSize: kSample32 as i32,
        numSamples: n as i32,
        numInputs: 1,
        numOutputs: buses as i32,
        inputs: in_bus.as_mut_ptr(),
        outputs: out_bus.as_mut_ptr(),
        inputParameterChanges: ptr::null_mut(),
        outputParameterChanges: ptr::null_mut(),
        inputEvents: ptr::null_mut(),
        outputEvents: ptr::null_mut(),
        processContext: ptr::null_mut(),
    };
    assert_eq!(unsafe { processor.process(&mut data) }, kResultOk);
    outs.chunks(2).map(|c| c.to_vec()).collect()
}

/// What many hosts do (JUCE's activates only the main bus; it sets parameters through the
/// controller while processing and reactivates the component for a reset): stem buses off,
/// or fewer buses passed. The main output must still be the separated signal, and parameter
/// values set through `setParamNormalized` while processing must reach the saved state and
/// the next activation (Quality → latency) without a process call in between.
#[test]
fn vst3_inactive_stem_buses_and_parameters_set_while_processing() {
    let lib = load_module();
    unsafe {
        let (factory, _info, component) = instantiate(&lib);
        for bus in [1, 2] {
            assert_eq!(component.activateBus(kAudio as i32, kOutput as i32, bus, 0), kResultOk);
        }
        let controller = component.cast::<IEditController>().expect("no IEditController");
        let processor = component.cast::<IAudioProcessor>().expect("no IAudioProcessor");
        let (sr, block) = (48_000.0, 512usize);
        let light_latency = setup_and_activate(&component, &processor, sr, block);
        assert_eq!(processor.setProcessing(1), kResultOk);

        // Stem buses inactive (0 channels, no pointers), then only the main bus passed.
        let blocks = 60;
        let input: Vec<Vec<f32>> = common::mixture(sr as f32, block * blocks).into();
        let want = common::engine_main_output(&input, sr, block);
        let mut main = vec![Vec::new(), Vec::new()];
        for b in 0..blocks {
            let slice = [&input[0][b * block..(b + 1) * block], &input[1][b * block..(b + 1) * block]];
            let buses = if b % 2 == 0 { 3 } else { 1 };
            let out = process_block(&processor, &slice, buses, [true, false, false]);
            for c in 0..2 {
                main[c].extend_from_slice(&out[0][c]);
            }
        }
        for c in 0..2 {
            let err = common::max_abs_diff(&main[c], &want[c]);
            assert!(err < 1e-5, "inactive stem buses: main output differs from the separated signal by {err}");
            let dry: Vec<f32> = (0..main[c].len())
                .map(|i| if i >= light_latency { input[c][i - light_latency] } else { 0.0 })
                .collect();
            let diff: Vec<f32> = main[c].iter().zip(&dry).map(|(a, b)| a - b).collect();
            assert!(common::rms(&diff) > 0.2 * common::rms(&dry), "inactive stem buses: main output is the dry input");
        }
        // Active stem buses still get their stems.
        let slice = [&input[0][..block], &input[1][..block]];
        let out = process_block(&processor, &slice, 3, [true, true, true]);
        assert!(out.iter().flatten().flatten().all(|x| x.is_finite()));

        // Quality = Worker set through the controller while processing, no process call after.
        let param = |title: &str| {
            (0..controller.getParameterCount())
                .map(|i| {
                    let mut info: ParameterInfo = std::mem::zeroed();
                    assert_eq!(controller.getParameterInfo(i, &mut info), kResultOk);
                    info
                })
                .find(|info| utf16(&info.title) == title)
                .unwrap_or_else(|| panic!("no {title} parameter"))
                .id
        };
        let quality = param("Quality");
        assert_eq!(controller.setParamNormalized(quality, 1.0), kResultOk);
        assert_eq!(controller.getParamNormalized(quality), 1.0, "value set while processing was dropped");
        let state = saved_state(&component);
        assert_eq!(state["params"]["quality"]["string"], "worker", "saved state misses the new value: {state}");
        // A host's reset (reactivation) applies it: the worker's budget is in the latency.
        assert_eq!(processor.setProcessing(0), kResultOk);
        assert_eq!(component.setActive(0), kResultOk);
        assert_eq!(component.setActive(1), kResultOk);
        let worker_latency = processor.getLatencySamples() as usize;
        assert!(worker_latency > light_latency, "Quality = Worker not applied: latency {worker_latency}");
        assert_eq!(processor.setProcessing(1), kResultOk);
        let out = process_block(&processor, &slice, 1, [true, false, false]);
        assert!(out[0].iter().flatten().all(|x| x.is_finite()));

        // And back to Light, the same way: the light latency returns.
        assert_eq!(controller.setParamNormalized(quality, 0.0), kResultOk);
        assert_eq!(saved_state(&component)["params"]["quality"]["string"], "light");
        assert_eq!(processor.setProcessing(0), kResultOk);
        assert_eq!(component.setActive(0), kResultOk);
        assert_eq!(component.setActive(1), kResultOk);
        assert_eq!(processor.getLatencySamples() as usize, light_latency, "switching back to Light kept the latency");

        // Latency = 6 ms (the last mode) the same way: the host gets that mode's latency.
        let latency_param = param("Latency");
        let reactivate = || {
            assert_eq!(processor.setProcessing(0), kResultOk);
            assert_eq!(component.setActive(0), kResultOk);
            assert_eq!(component.setActive(1), kResultOk);
            processor.getLatencySamples() as usize
        };
        assert_eq!(controller.setParamNormalized(latency_param, 1.0), kResultOk);
        assert_eq!(saved_state(&component)["params"]["latency"]["string"], "6ms");
        let w = isola_engine::embedded::LatencyMode::Ms6.light().unwrap();
        let want = w.meta.model.frame_grid(&w.meta.stft).latency_samples(sr, 0);
        assert_eq!(reactivate(), want, "Latency = 6 ms: VST3 latency");
        assert!(want as f64 * 1e3 / sr <= 6.0);
        assert_eq!(processor.setProcessing(1), kResultOk);
        let out = process_block(&processor, &slice, 1, [true, false, false]);
        assert!(out[0].iter().flatten().all(|x| x.is_finite()));
        assert_eq!(controller.setParamNormalized(latency_param, 0.0), kResultOk);
        assert_eq!(reactivate(), light_latency, "back to Latency = 23 ms");

        shut_down(&lib, factory, component, controller, processor);
    }
}
