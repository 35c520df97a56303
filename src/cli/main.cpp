#include <cstdio>
#include <torch/torch.h>
#include "dreambooth/core/error.h"
int main() { std::printf("dreambooth\n"); return 0; }
