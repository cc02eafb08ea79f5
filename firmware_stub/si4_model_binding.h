/*
 * si4_model_binding.h - "the model" for the programs written against the
 * default names (main.c, the host runner), whatever --name the assets were
 * built with.
 *
 * Without a name the generated files are model.h and test_vectors.h and their
 * names are already si4_model_*, SI4_MODEL_*, si4_test_*, SI4_TEST_VECTOR_*.
 * Assets built with --name kws hold kws_model.h (kws_invoke, KWS_INPUT_SIZE,
 * kws_test_inputs ...); the build then defines
 *
 *   -DSI4_BIND_NAME=kws -DSI4_BIND_NAME_UPPER=KWS
 *   -DSI4_BIND_MODEL_H='"kws_model.h"' -DSI4_BIND_VECTORS_H='"kws_test_vectors.h"'
 *
 * (`make ... NAME=kws`, or si4tool, which reads the name from manifest.json)
 * and this header maps the default names onto that model's. A program that
 * runs several models includes each model's header itself and uses its names.
 */
#ifndef SI4_MODEL_BINDING_H
#define SI4_MODEL_BINDING_H

#ifndef SI4_BIND_NAME

#include "model.h"
#ifndef SI4_BIND_NO_VECTORS
#include "test_vectors.h"
#endif

#else /* SI4_BIND_NAME */

#include SI4_BIND_MODEL_H
#ifndef SI4_BIND_NO_VECTORS
#include SI4_BIND_VECTORS_H
#endif

/* Two levels, so SI4_BIND_NAME expands before it is pasted. */
#define SI4_BIND_CAT_(a, b) a##b
#define SI4_BIND_CAT(a, b) SI4_BIND_CAT_(a, b)
#define SI4_BIND(suffix) SI4_BIND_CAT(SI4_BIND_NAME, suffix)
#define SI4_BIND_UPPER(suffix) SI4_BIND_CAT(SI4_BIND_NAME_UPPER, suffix)

#define SI4_MODEL_SHA256 SI4_BIND_UPPER(_SHA256)
#define SI4_MODEL_SHA256_SHORT SI4_BIND_UPPER(_SHA256_SHORT)
#define SI4_MODEL_INPUT_SIZE SI4_BIND_UPPER(_INPUT_SIZE)
#define SI4_MODEL_OUTPUT_SIZE SI4_BIND_UPPER(_OUTPUT_SIZE)
#define SI4_MODEL_ARENA_BYTES SI4_BIND_UPPER(_ARENA_BYTES)
#define SI4_MODEL_ARENA_ALIGNMENT SI4_BIND_UPPER(_ARENA_ALIGNMENT)
#define SI4_MODEL_LAYER_COUNT SI4_BIND_UPPER(_LAYER_COUNT)
#define si4_model_invoke SI4_BIND(_invoke)
#define si4_model_invoke_with_arena SI4_BIND(_invoke_with_arena)
#define si4_model_arena SI4_BIND(_arena)
#define si4_model_layers SI4_BIND(_layers)
#define si4_model_layer_names SI4_BIND(_layer_names)
#define si4_model_layer_output_offsets SI4_BIND(_layer_output_offsets)
#define si4_model_layer_output_sizes SI4_BIND(_layer_output_sizes)

#define SI4_TEST_VECTOR_COUNT SI4_BIND_UPPER(_TEST_VECTOR_COUNT)
#define SI4_TEST_VECTOR_INPUT_SIZE SI4_BIND_UPPER(_TEST_VECTOR_INPUT_SIZE)
#define SI4_TEST_VECTOR_OUTPUT_SIZE SI4_BIND_UPPER(_TEST_VECTOR_OUTPUT_SIZE)
#define SI4_TEST_VECTOR_HAS_LABELS SI4_BIND_UPPER(_TEST_VECTOR_HAS_LABELS)
#define si4_test_inputs SI4_BIND(_test_inputs)
#define si4_test_labels SI4_BIND(_test_labels)
#define si4_test_expected_outputs SI4_BIND(_test_expected_outputs)

#endif /* SI4_BIND_NAME */

#endif /* SI4_MODEL_BINDING_H */
