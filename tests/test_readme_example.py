"""The README's usage example, as written (only `import fastsegadv as fsa`)."""
import subprocess
import sys

EXAMPLE = '''
import fastsegadv as fsa
model = fsa.models.load_pretrained("standard")
images, labels = fsa.data.make_digit_scenes("test", num_images=4)
trace = fsa.attacks.AttackTrace()
adv = fsa.attacks.segpgd(model, images, labels, eps=8 / 255, alpha=0.01, steps=2, seed=0, trace=trace)
print(trace.as_dicts()[-1]["step"])
cm = fsa.metrics.ConfusionMatrix(11, ignore_index=255)
cm.update(model(adv).argmax(1), labels)
print(0 <= cm.miou() <= 1)
'''


def test_readme_example_runs():
    out = subprocess.run([sys.executable, "-c", EXAMPLE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "True"]
