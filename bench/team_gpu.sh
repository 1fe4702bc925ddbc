#!/bin/bash
# ON THE GPU MACHINE, in the project root with .dev/ carried (../shared/device/README.md):
# builds llama.cpp's llama-server and llama-quantize (CUDA, Hopper) while the 8B-shaped
# random-weight model is written, quantizes it to Q4_K_M, serves it with 8 slots, and measures
# decode through Confidant's endpoint client (bench/team_gpu.py). Reuses ~/w of a warm
# machine. Output: $OUT/team-gpu.json and $OUT/team-gpu.log.
set -u
R=$PWD; W=$HOME/w; OUT=${OUT:-/tmp/out}; mkdir -p $W $OUT
LOG=$OUT/team-gpu.log
say() { echo "[$(date +%T)] $*" | tee -a $LOG; }
[ -d $W/llama_src ] || tar xzf "$R/.dev/llama_src.tar.gz" -C $W
L=$W/llama_src/vendor/llama.cpp; BIN=$L/build/bin
TOK=${TOK:-$R/.dev/tok.gguf}
[ -f "$TOK" ] || { cat "$R"/.dev/smol.part* > $W/smol.gguf; TOK=$W/smol.gguf; }
if [ ! -x $BIN/llama-server ] || [ ! -x $BIN/llama-quantize ]; then
  say "building llama-server and llama-quantize"
  (cd $L && cmake -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCH:-90} \
     -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
     -DLLAMA_BUILD_EXAMPLES=OFF > $W/team-build.log 2>&1 \
   && cmake --build build -j 16 --target llama-server llama-quantize >> $W/team-build.log 2>&1;
   echo $? > $W/team-build.rc) &
  BUILD=$!
fi
if [ ! -f $W/shape-q4km.gguf ] && [ ! -f $W/shape-f16.gguf ]; then
  say "writing the 8B-shaped f16 model"
  PYTHONPATH=$L/gguf-py python3 $R/.dev/device/make_shape_model.py $TOK $W/shape-f16.gguf 8b \
    > $W/team-shape.log 2>&1 || { say "shape failed"; tail -5 $W/team-shape.log | tee -a $LOG; }
fi
[ -n "${BUILD:-}" ] && wait $BUILD
tail -2 $W/team-build.log >> $LOG 2>/dev/null
[ -x $BIN/llama-server ] || { say "build failed"; tail -30 $W/team-build.log >> $LOG; exit 1; }
if [ ! -f $W/shape-q4km.gguf ]; then
  say "quantizing to Q4_K_M"
  $BIN/llama-quantize $W/shape-f16.gguf $W/shape-q4km.gguf Q4_K_M 16 > $W/team-quant.log 2>&1 \
    && rm -f $W/shape-f16.gguf
fi
ls -la $W/*.gguf >> $LOG
say "serving: 8 slots of 4096 tokens"
# chatml: the shape model's borrowed tokenizer file may carry a placeholder chat template
$BIN/llama-server -m $W/shape-q4km.gguf -ngl 99 -c 32768 -np 8 --host 127.0.0.1 --port 8080 \
  --chat-template chatml \
  > $OUT/llama-server.log 2>&1 &
SERVER=$!
for i in $(seq 1 120); do curl -sf 127.0.0.1:8080/v1/models > /dev/null && break; sleep 1; done
say "measuring"
PYTHONPATH=$R python3 -m bench.team_gpu http://127.0.0.1:8080/v1 ${TEAM_GPU_ARGS:-} \
  > $OUT/team-gpu.json 2>> $LOG
cat $OUT/team-gpu.json
kill $SERVER
grep -E "eval time|prompt eval" $OUT/llama-server.log | tail -4 >> $LOG
say "done"
