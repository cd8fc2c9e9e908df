/* libFuzzer target: the Anthropic Messages stream parser. */
#define FUZZ_KIND LLM_ANTHROPIC
#include "fuzz_llm.h"
