//! Hand-written declarations for the part of `<espeak-ng/speak_lib.h>` (API revision 12,
//! Debian's espeak-ng 1.51) this crate calls. Kept small on purpose: a wrong declaration here
//! is undefined behaviour, so every item mirrors the header field for field.

use std::ffi::{c_char, c_int, c_short, c_uint, c_void};

/// `espeak_AUDIO_OUTPUT::AUDIO_OUTPUT_SYNCHRONOUS`: `espeak_Synth` runs the whole synthesis
/// on the calling thread and calls the synth callback from it before returning.
pub(crate) const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
/// `espeakINITIALIZE_PHONEME_EVENTS`: deliver `espeakEVENT_PHONEME` events.
pub(crate) const INITIALIZE_PHONEME_EVENTS: c_int = 0x0001;
/// `espeakINITIALIZE_DONT_EXIT`: return an error instead of calling `exit()` when the data
/// directory is missing.
pub(crate) const INITIALIZE_DONT_EXIT: c_int = 0x8000;
/// `espeakCHARS_UTF8`.
pub(crate) const CHARS_UTF8: c_uint = 1;
/// `espeak_POSITION_TYPE::POS_CHARACTER`.
pub(crate) const POS_CHARACTER: c_int = 1;
/// `espeak_ERROR::EE_OK`.
pub(crate) const EE_OK: c_int = 0;

/// `espeak_PARAMETER` values.
pub(crate) const PARAM_RATE: c_int = 1;
pub(crate) const PARAM_PITCH: c_int = 3;

/// `espeak_EVENT_TYPE` values.
pub(crate) const EVENT_LIST_TERMINATED: c_int = 0;
pub(crate) const EVENT_WORD: c_int = 1;
pub(crate) const EVENT_SENTENCE: c_int = 2;
pub(crate) const EVENT_END: c_int = 5;
pub(crate) const EVENT_MSG_TERMINATED: c_int = 6;
pub(crate) const EVENT_PHONEME: c_int = 7;

/// The `id` union of `espeak_EVENT`; only `string` (phoneme mnemonics) and `number` are read.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union EventId {
    pub(crate) number: c_int,
    pub(crate) name: *const c_char,
    pub(crate) string: [u8; 8],
}

/// `espeak_EVENT`.
#[repr(C)]
pub(crate) struct Event {
    pub(crate) kind: c_int,
    pub(crate) unique_identifier: c_uint,
    pub(crate) text_position: c_int,
    pub(crate) length: c_int,
    pub(crate) audio_position: c_int,
    pub(crate) sample: c_int,
    pub(crate) user_data: *mut c_void,
    pub(crate) id: EventId,
}

/// `t_espeak_callback`: return 0 to continue, 1 to abort synthesis.
pub(crate) type SynthCallback =
    unsafe extern "C" fn(wav: *mut c_short, numsamples: c_int, events: *mut Event) -> c_int;

// Linked by build.rs (pkg-config `espeak-ng`).
unsafe extern "C" {
    pub(crate) fn espeak_Initialize(
        output: c_int,
        buflength: c_int,
        path: *const c_char,
        options: c_int,
    ) -> c_int;
    pub(crate) fn espeak_SetSynthCallback(callback: Option<SynthCallback>);
    pub(crate) fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
    pub(crate) fn espeak_SetParameter(parameter: c_int, value: c_int, relative: c_int) -> c_int;
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn espeak_Synth(
        text: *const c_void,
        size: usize,
        position: c_uint,
        position_type: c_int,
        end_position: c_uint,
        flags: c_uint,
        unique_identifier: *mut c_uint,
        user_data: *mut c_void,
    ) -> c_int;
    pub(crate) fn espeak_Info(path_data: *mut *const c_char) -> *const c_char;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_layout_matches_the_c_header_on_64_bit() {
        // type, id, text_position, length, audio_position, sample (6 x 4 bytes),
        // user_data (8), id union (8): 40 bytes, pointer aligned.
        assert_eq!(std::mem::size_of::<Event>(), 40);
        assert_eq!(std::mem::offset_of!(Event, user_data), 24);
        assert_eq!(std::mem::offset_of!(Event, id), 32);
    }
}
