"""Training quality against wall-clock time: `bptt train` with its defaults, then PyTorch's
nn.LSTM and nn.RNN recipes on the same streams (one-hot characters in, hidden 256, nn.Linear
out, Adam 0.002, clipping at 5, 32 streams of 100 characters, the state carried), each for the
same wall time, one after the other, each in its own process on the same threads (OpenMP's
waiting threads asleep: see `cli.child_env`). Every run is
scored as `bptt train` scores itself (`bptt.validation.bits_per_character` on the first
--validation-chars held-out characters, every --eval-every steps and at the end, the clock
running through validations alike), and the validation bits per character are plotted against
the time of each run in one PNG, with a markdown table beside it.

    python bench/train_quality.py [--minutes 5 | --steps N] [--threads 2] [--text FILE]
                                  [--out bench/results/quality] [--runs bptt,lstm,rnn]

`--runs bptt,bptt-bfloat16` instead compares `bptt train` in float32 with its bfloat16
products (`--compute-dtype bfloat16`) for the same time.

Modules: `cli` (the command and its children), `recipes` (the PyTorch runs), `report` (the plot
and the table)."""
