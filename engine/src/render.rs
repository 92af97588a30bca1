//! The offline render: the one loop that drives a [`Separator`] over whole signals, block
//! by block, exactly as a host would. `isola separate`/`eval`, the tests and the benches all
//! render through it, so what they measure is what the plugin plays. Allocates (the output
//! buffers and per-block slice lists): never on the audio thread.

use crate::rt::{Separator, SeparatorParams};

/// How to cut the signal into blocks and what to return.
#[derive(Debug, Clone, Copy)]
pub struct Render<'a> {
    /// Block lengths in samples, cycled (hosts vary them); zeros are skipped, and a list
    /// without a non-zero length renders nothing (silent outputs).
    pub blocks: &'a [usize],
    /// Channels of the vocal and accompaniment outputs; `None` = the input's. (The plugin's
    /// stem buses are stereo whatever the input; extra channels copy the last input channel.)
    pub stem_channels: Option<usize>,
    /// `true`: feed `latency` samples of silence after the input and drop the first
    /// `latency` samples of every output, so outputs line up with the input sample for
    /// sample and have its length (what `isola separate` writes). `false`: the outputs a
    /// host records, delayed by the latency, with the input's length.
    pub align: bool,
}

/// A typical host buffer: the block `isola separate` and `isola eval` render with.
pub const DEFAULT_BLOCK: usize = 512;

impl Default for Render<'_> {
    fn default() -> Self {
        Self { blocks: &[DEFAULT_BLOCK], stem_channels: None, align: true }
    }
}

/// Where the render stands after a block, for [`Render::run_with`]'s callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Blocks processed so far, minus one (0 for the first block).
    pub index: usize,
    /// Length of this block in samples.
    pub len: usize,
    /// Samples processed so far, this block included (counting the flush when aligning).
    pub end: usize,
}

/// The three outputs of a render, each `[channels][samples]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The main output (the blend the plugin's main bus carries).
    pub main: Vec<Vec<f32>>,
    pub vocals: Vec<Vec<f32>>,
    pub accompaniment: Vec<Vec<f32>>,
}

impl Render<'_> {
    /// Renders `input` (`[channels][samples]`, all channels the same length) through a
    /// prepared `sep` with fixed `params`.
    pub fn run(&self, sep: &mut Separator, input: &[Vec<f32>], params: &SeparatorParams) -> Rendered {
        let mut params = *params;
        self.run_with(sep, input, &mut params, |_, _, _| {})
    }

    /// Like [`Render::run`]; `after_block` runs after every block and may change the
    /// parameters of the next one or act on the separator (queue a model, read its stats).
    pub fn run_with(
        &self,
        sep: &mut Separator,
        input: &[Vec<f32>],
        params: &mut SeparatorParams,
        mut after_block: impl FnMut(Block, &mut Separator, &mut SeparatorParams),
    ) -> Rendered {
        let len = input.first().map_or(0, Vec::len);
        let latency = if self.align { sep.latency_samples() } else { 0 };
        let total = len + latency;
        let stems = self.stem_channels.unwrap_or(input.len());
        let mut main: Vec<Vec<f32>> = input
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c.resize(total, 0.0); // past the input's end: silence flushes the latency
                c
            })
            .collect();
        let mut vocals = vec![vec![0.0; total]; stems];
        let mut accompaniment = vec![vec![0.0; total]; stems];
        let mut at = 0;
        let blocks = self.blocks.iter().copied().filter(|&b| b > 0).cycle();
        for (index, b) in blocks.enumerate() {
            if at >= total {
                break;
            }
            let n = b.min(total - at);
            let mut m: Vec<&mut [f32]> = main.iter_mut().map(|c| &mut c[at..at + n]).collect();
            let mut v: Vec<&mut [f32]> = vocals.iter_mut().map(|c| &mut c[at..at + n]).collect();
            let mut a: Vec<&mut [f32]> = accompaniment.iter_mut().map(|c| &mut c[at..at + n]).collect();
            sep.process(&mut m, Some(&mut v), Some(&mut a), params);
            at += n;
            after_block(Block { index, len: n, end: at }, sep, params);
        }
        for c in main.iter_mut().chain(vocals.iter_mut()).chain(accompaniment.iter_mut()) {
            c.drain(..latency);
        }
        Rendered { main, vocals, accompaniment }
    }
}
