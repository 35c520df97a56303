#include "dreambooth/checkpoint/convert.h"

#include "dreambooth/checkpoint/source.h"
#include "dreambooth/checkpoint/writer.h"
#include "dreambooth/core/error.h"

namespace fs = std::filesystem;

namespace dreambooth::checkpoint {

ModelDescription convert_checkpoint(const ConvertOptions& options) {
  OpenOptions open;
  open.prediction_type = options.prediction_type;
  open.prefer_fp16_variant = options.dtype == c10::kHalf;
  CheckpointSource source = open_checkpoint(options.input, open);

  PerComponent<TensorMap> tensors;
  for (Component c : kAllComponents) tensors[c] = component_views(source, c);
  const std::vector<io::NamedTensor> extras = extra_views(source);

  WriteOptions write;
  write.dtype = options.dtype;
  write.overwrite = options.overwrite;
  write.add_files = options.add_files;
  ModelDescription written = source.description;
  written.layout = options.layout;
  written.source = options.output;
  if (options.layout == Layout::SingleFile) {
    write_single_file(written, tensors, extras, options.output, write);
  } else {
    const fs::path tokenizer = options.input / "tokenizer";
    std::error_code ec;
    if (!write.add_files && source.description.layout == Layout::Diffusers && fs::is_directory(tokenizer, ec))
      write.add_files = [tokenizer](const fs::path& folder) {
        std::error_code copy_error;
        fs::copy(tokenizer, folder / "tokenizer", fs::copy_options::recursive, copy_error);
        if (copy_error)
          throw output_error((folder / "tokenizer").string(), "cannot copy the tokenizer: " + copy_error.message());
      };
    write_diffusers(written, tensors, extras, options.output, write);
  }
  if (options.dtype)
    for (Component c : kAllComponents) written.stored_dtype[c] = *options.dtype;
  return written;
}

ModelDescription convert_checkpoint(const fs::path& input, const fs::path& output, Layout layout,
                                    std::optional<c10::ScalarType> dtype) {
  ConvertOptions options;
  options.input = input;
  options.output = output;
  options.layout = layout;
  options.dtype = dtype;
  return convert_checkpoint(options);
}

}  // namespace dreambooth::checkpoint
