//! Hand-written declarations for the part of PocketSphinx 0.8 (`<pocketsphinx.h>`) and
//! SphinxBase (`<sphinxbase/cmd_ln.h>`, `<sphinxbase/err.h>`) this crate calls, as shipped in
//! Debian's 0.8+5prealpha packages. The `pocketsphinx` crate on crates.io targets a different
//! version of the library, hence these. `int32` is `i32` on every Debian architecture.

use std::ffi::{c_char, c_int, c_void};

/// Opaque `cmd_ln_t`: a parsed configuration.
#[repr(C)]
pub(crate) struct CmdLn {
    _private: [u8; 0],
}

/// Opaque `arg_t`: the table of options the decoder understands.
#[repr(C)]
pub(crate) struct ArgDef {
    _private: [u8; 0],
}

/// Opaque `ps_decoder_t`.
#[repr(C)]
pub(crate) struct Decoder {
    _private: [u8; 0],
}

/// Opaque `ps_seg_t`: iterator over the words of a hypothesis.
#[repr(C)]
pub(crate) struct Seg {
    _private: [u8; 0],
}

// Linked by build.rs (pkg-config `pocketsphinx`: -lpocketsphinx -lsphinxbase).
unsafe extern "C" {
    pub(crate) fn ps_args() -> *const ArgDef;
    pub(crate) fn cmd_ln_parse_r(
        inout_cmdln: *mut CmdLn,
        defn: *const ArgDef,
        argc: i32,
        argv: *mut *mut c_char,
        strict: i32,
    ) -> *mut CmdLn;
    pub(crate) fn cmd_ln_free_r(cmdln: *mut CmdLn) -> c_int;
    /// `FILE *` is only ever passed as null (disables logging), so `c_void` stands in for it.
    pub(crate) fn err_set_logfp(stream: *mut c_void);

    pub(crate) fn ps_init(config: *mut CmdLn) -> *mut Decoder;
    pub(crate) fn ps_free(ps: *mut Decoder) -> c_int;
    pub(crate) fn ps_start_utt(ps: *mut Decoder) -> c_int;
    pub(crate) fn ps_process_raw(
        ps: *mut Decoder,
        data: *const i16,
        n_samples: usize,
        no_search: c_int,
        full_utt: c_int,
    ) -> c_int;
    pub(crate) fn ps_end_utt(ps: *mut Decoder) -> c_int;
    pub(crate) fn ps_get_hyp(ps: *mut Decoder, out_best_score: *mut i32) -> *const c_char;
    pub(crate) fn ps_get_in_speech(ps: *mut Decoder) -> u8;
    pub(crate) fn ps_seg_iter(ps: *mut Decoder) -> *mut Seg;
    pub(crate) fn ps_seg_next(seg: *mut Seg) -> *mut Seg;
    pub(crate) fn ps_seg_word(seg: *mut Seg) -> *const c_char;
    pub(crate) fn ps_seg_frames(seg: *mut Seg, out_sf: *mut c_int, out_ef: *mut c_int);
}
