list(APPEND DREAMBOOTH_SOURCES
  src/schedulers/scheduler_config.cpp
  src/schedulers/noise_schedule.cpp
  src/schedulers/schedule.cpp
  src/schedulers/noise_source.cpp
  src/schedulers/sampler.cpp
  src/schedulers/ddim.cpp
  src/schedulers/ddpm.cpp
  src/schedulers/pndm.cpp
  src/schedulers/euler.cpp
  src/schedulers/dpm_solver.cpp
  src/schedulers/lms.cpp
  src/schedulers/registry.cpp
)
