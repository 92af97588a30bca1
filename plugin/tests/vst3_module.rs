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
    IComponentTrait, IEditController, IEditControllerTrait, ProcessData, ProcessSetup,
};
use vst3::Steinberg::{FIDString, IPluginBaseTrait, IPluginFactory, IPluginFactoryTrait, PClassInfo, kResultOk};

fn utf16(s: &[u16]) -> String {
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    String::from_utf16_lossy(&s[..end])
}

fn c_str(s: &[std::ffi::c_char]) -> String {
    // SAFETY: fixed-size, NUL-terminated C string from the plugin.
    unsafe { CStr::from_ptr(s.as_ptr()) }.to_string_lossy().into_owned()
}

#[test]
fn vst3_factory_component_and_processing() {
    let module = common::bundle("vst3");
    // SAFETY: our own freshly built module.
    let lib = unsafe { libloading::Library::new(&module) }.expect("cannot dlopen the .vst3 module");

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
        assert_eq!(c_str(&info.name), "Isola");
        assert_eq!(c_str(&info.category), "Audio Module Class");

        let mut obj: *mut c_void = ptr::null_mut();
        let iid = IComponent::IID;
        assert_eq!(
            factory.createInstance(info.cid.as_ptr() as FIDString, iid.as_ptr() as FIDString, &mut obj),
            kResultOk
        );
        let component = ComPtr::<IComponent>::from_raw(obj as *mut IComponent).expect("null component");
        assert_eq!(component.initialize(ptr::null_mut()), kResultOk);

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
        // Output, two levels, Strength, Mix, Bypass, Quality, Worker budget.
        assert_eq!(controller.getParameterCount(), 8);

        let processor = component.cast::<IAudioProcessor>().expect("no IAudioProcessor");
        let block = 512usize;
        let mut setup = ProcessSetup {
            processMode: kRealtime as i32,
            symbolicSampleSize: kSample32 as i32,
            maxSamplesPerBlock: block as i32,
            sampleRate: 48_000.0,
        };
        assert_eq!(processor.setupProcessing(&mut setup), kResultOk);
        assert_eq!(component.setActive(1), kResultOk);
        let latency = processor.getLatencySamples() as usize;
        let w = isola_engine::weights::Weights::from_bytes(isola_plugin::model::DEFAULT_WEIGHTS).unwrap();
        let mut sep = isola_engine::rt::Separator::new(isola_engine::rt::RtMaskNet::new(&w).unwrap());
        sep.prepare(48_000.0, block, 2).unwrap();
        assert_eq!(latency, sep.latency_samples(), "VST3 latency differs from the engine's");
        assert_eq!(processor.setProcessing(1), kResultOk);

        let blocks = 100;
        let input = common::mixture(48_000.0, block * blocks);
        let mut ins = [vec![0f32; block], vec![0f32; block]];
        let mut outs: Vec<Vec<f32>> = vec![vec![0f32; block]; 6];
        let mut rendered: Vec<Vec<f32>> = vec![Vec::new(); 6];
        for b in 0..blocks {
            for c in 0..2 {
                ins[c].copy_from_slice(&input[c][b * block..(b + 1) * block]);
            }
            outs.iter_mut().for_each(|o| o.fill(f32::NAN));
            let mut in_ptrs: Vec<*mut f32> = ins.iter_mut().map(|c| c.as_mut_ptr()).collect();
            let mut out_ptrs: Vec<*mut f32> = outs.iter_mut().map(|c| c.as_mut_ptr()).collect();
            let mut in_bus = [AudioBusBuffers {
                numChannels: 2,
                silenceFlags: 0,
                __field0: AudioBusBuffers__type0 { channelBuffers32: in_ptrs.as_mut_ptr() },
            }];
            let mut out_bus: Vec<AudioBusBuffers> = (0..3)
                .map(|k| AudioBusBuffers {
                    numChannels: 2,
                    silenceFlags: 0,
                    __field0: AudioBusBuffers__type0 { channelBuffers32: out_ptrs.as_mut_ptr().add(2 * k) },
                })
                .collect();
            let mut data = ProcessData {
                processMode: kRealtime as i32,
                symbolicSampleSize: kSample32 as i32,
                numSamples: block as i32,
                numInputs: 1,
                numOutputs: 3,
                inputs: in_bus.as_mut_ptr(),
                outputs: out_bus.as_mut_ptr(),
                inputParameterChanges: ptr::null_mut(),
                outputParameterChanges: ptr::null_mut(),
                inputEvents: ptr::null_mut(),
                outputEvents: ptr::null_mut(),
                processContext: ptr::null_mut(),
            };
            assert_eq!(processor.process(&mut data), kResultOk, "process failed at block {b}");
            for (r, o) in rendered.iter_mut().zip(&outs) {
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
        assert_eq!(component.setActive(0), kResultOk);
        assert_eq!(component.terminate(), kResultOk);
        drop(processor);
        drop(controller);
        drop(component);
        drop(factory);
        #[cfg(all(unix, not(target_os = "macos")))]
        {
            let exit: libloading::Symbol<unsafe extern "C" fn() -> bool> =
                lib.get(b"ModuleExit").expect("ModuleExit missing");
            assert!(exit());
        }
    }
    // Unloading is safe: the library is linked `-z nodelete` (see plugin/build.rs).
    drop(lib);
}
