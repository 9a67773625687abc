# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Where the CPU time of a profiled scrubber went.

    python tools/bench/profile_top.py FILE.folded [--top N]

FILE is py-spy's raw output (``py-spy record --format raw``): one line per
distinct stack, frames separated by ';', then the sample count. Prints the
share of samples spent in the scrub pass (stacks through ``run_once`` or
a worker, or upstream's ``_scrub_image``) against start-up, then the
functions with the most samples, inclusive (anywhere on the stack) and
exclusive (on top), within the pass.
"""

import argparse
import collections

# Frames of the pass: this tree's Scrubber.run_once and its workers (green
# threads do not run under run_once's frame), upstream's _scrub_image.
PASS_MARKERS = ('Scrubber.run_once ', 'Worker.__call__ ', '_scrub_image ')


def read_stacks(path):
    stacks = []
    with open(path) as folded:
        for line in folded:
            line = line.rstrip()
            if not line:
                continue
            stack, _, count = line.rpartition(' ')
            stacks.append((stack.split(';'), int(count)))
    return stacks


def short(frame):
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(' (')
    module = where.rsplit('/', 1)[-1].split(':')[0].rstrip(')')
    return '%s (%s)' % (name, module) if module else name


def in_pass(frames):
    return any(marker in frame for frame in frames
               for marker in PASS_MARKERS)


def summarise(stacks, top):
    total = sum(count for _, count in stacks)
    passing = [(frames, count) for frames, count in stacks
               if in_pass(frames)]
    pass_total = sum(count for _, count in passing) or 1
    inclusive = collections.Counter()
    exclusive = collections.Counter()
    for frames, count in passing:
        for name in {short(frame) for frame in frames}:
            inclusive[name] += count
        exclusive[short(frames[-1])] += count
    print('samples: %d, in the pass: %d (%.0f%%), start-up and exit: %d'
          % (total, pass_total, 100.0 * pass_total / max(total, 1),
             total - pass_total))
    print('\ninclusive, share of the pass:')
    for name, count in inclusive.most_common(top):
        print('  %5.1f%%  %s' % (100.0 * count / pass_total, name))
    print('\nexclusive (self), share of the pass:')
    for name, count in exclusive.most_common(top):
        print('  %5.1f%%  %s' % (100.0 * count / pass_total, name))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('folded')
    parser.add_argument('--top', type=int, default=25)
    args = parser.parse_args(argv)
    summarise(read_stacks(args.folded), args.top)


if __name__ == '__main__':
    main()
