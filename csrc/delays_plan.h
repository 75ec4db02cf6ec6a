// Argument checks of te.transfer_entropy_delays shared by its kernels.
#pragma once

#include <c10/util/ArrayRef.h>

namespace te {

// Raises ValueError unless `delays` is non-empty and every delay is >= 1.
void check_delays(c10::IntArrayRef delays, const char* op);

}  // namespace te
