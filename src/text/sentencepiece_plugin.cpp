// Placeholder plugin body; the text area fills in the C API (see sentencepiece_plugin_api.h).
extern "C" int dreambooth_spm_api_version() { return 0; }
