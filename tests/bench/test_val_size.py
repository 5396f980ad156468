import numpy as np


def test_a_margin_keeps_only_front_steps_beyond_it(load_bench):
    bench = load_bench("val_size")
    val = np.array([80.0, 80.1, 81.0, 81.05, 82.0, 79.0])  # the last is dominated: never on the front
    lat = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert bench.family(val, lat, 8) == [0, 1, 2, 3, 4]
    # one standard error at 80% on 3,000 images is 0.73 points: 80.1 and 81.05 are within it of the last kept
    assert bench.family(val, lat, 8, margin=1.0, m=3000) == [0, 2, 4]
    assert bench.family(val, lat, 8, margin=10.0, m=3000) == [0]


def test_figures_say_whether_every_step_rises_on_held_out_images(load_bench):
    bench = load_bench("val_size")
    val = np.array([80.0, 81.0, 82.0])
    lat = np.array([1.0, 2.0, 4.0])
    rising = bench.figures(val, np.array([70.0, 71.0, 72.0]), lat, 8)
    assert rising["all_rising"] == 1.0 and rising["rising"] == 1.0
    assert rising["models"] == 3 and rising["span"] == 4.0 and rising["gap"] == 2.0
    falling = bench.figures(val, np.array([70.0, 69.0, 72.0]), lat, 8)
    assert falling["all_rising"] == 0.0 and falling["rising"] == 0.5 and falling["best"] == 72.0


def test_calibration_noise_compares_each_sub_network_across_draws(load_bench, monkeypatch, tmp_path):
    bench = load_bench("val_size")
    first = np.array([[1, 1, 0, 0], [1, 1, 1, 0]])  # 50% and 75% with the search's calibration
    second = np.array([[1, 1, 1, 0], [1, 0, 0, 0]])  # 75% and 25% with the next block of images
    monkeypatch.setattr(bench, "correct_matrix", lambda run, draw: (second, None, None))
    noise = bench.calibration_noise(tmp_path, first, 2)
    assert noise["std_max"] == np.std([75, 25], ddof=1)
    assert noise["std_mean"] == np.mean([np.std([50, 75], ddof=1), np.std([75, 25], ddof=1)])
    assert noise["tau_between_draws"] == -1.0
