"""Recipes: every shipped one loads; bad ones fail at once naming the field."""

from __future__ import annotations

import pytest

from s2distill.config.recipe import RecipeError, apply_override, load_recipe


def test_every_shipped_recipe_loads_and_says_how_to_run_it(recipes_dir):
    recipes = sorted(recipes_dir.glob("*.yaml"))
    assert {p.stem for p in recipes} >= {"quickstart", "smoke"}
    for path in recipes:
        load_recipe(path)
        assert path.read_text().startswith(f"# Run: s2distill run recipes/{path.name}")


def write(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("task: {name: last_letters, trian_size: 3}", "task.trian_size: unknown key"),
        ("task: {name: last_letters}\nteacher: {samples: many}", "teacher.samples: Input should be a valid integer"),
        ("task: {name: last_letters}\nteacher: {method: {name: magic}}", "teacher.method: unknown method 'magic'"),
        ("task: {name: last_letters}\nstudent: {model: {backend: hf, path: /no/such/model}}", "does not exist"),
        ("task: {name: last_letters}\ntrainig: {}", "trainig: unknown key"),
        ("task: [", "not valid YAML"),
        ("task: {name: last_letters}\ndata_dir: /no/such/folder", "data_dir: data folder '/no/such/folder' does not exist"),
    ],
)
def test_bad_recipes_name_the_field(tmp_path, text, message):
    with pytest.raises(RecipeError, match="(?s)" + message.replace("(", r"\(").replace("[", r"\[")):
        load_recipe(write(tmp_path, text))


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")


def test_overrides_reach_nested_fields_with_yaml_types(recipes_dir):
    recipe = load_recipe(recipes_dir / "smoke.yaml", ["teacher.samples=6", "train.learning_rate=1e-4", "task.test_size=3"])
    assert recipe.teachers[0].samples == 6 and recipe.train.learning_rate == 1e-4 and recipe.task.test_size == 3
    with pytest.raises(RecipeError, match="teacher.samples"):
        load_recipe(recipes_dir / "smoke.yaml", ["teacher.samples=-1"])
    with pytest.raises(RecipeError, match="not key=value"):
        load_recipe(recipes_dir / "smoke.yaml", ["teacher.samples"])


def test_data_dir_is_used_by_the_tasks(recipes_dir, tmp_path):
    from s2distill.paths import data_dir
    from s2distill.pipeline import Pipeline

    recipe = load_recipe(recipes_dir / "smoke.yaml", [f"data_dir={data_dir()}"])
    assert Pipeline(recipe, tmp_path).ctx.task.data_root == data_dir()


def test_several_teachers_get_unique_names_and_references_are_checked():
    from s2distill.config.recipe import validate_recipe

    base = {"task": {"name": "last_letters"}}
    recipe = validate_recipe({**base, "teachers": [{"method": {"name": "pal"}}, {"method": {"name": "pal"}}, {"name": "mine"}]})
    assert [t.name for t in recipe.teachers] == ["pal", "pal-2", "mine"]
    with pytest.raises(RecipeError, match="either teacher .* or teachers"):
        validate_recipe({**base, "teacher": {}, "teachers": [{}]})
    with pytest.raises(RecipeError, match="teacher name 'pal' is used twice"):
        validate_recipe({**base, "teachers": [{"name": "pal"}, {"name": "pal"}]})
    with pytest.raises(RecipeError, match="distill.refiner: no teacher named 'nobody'"):
        validate_recipe({**base, "distill": {"refiner": "nobody"}})
    with pytest.raises(RecipeError, match="distill.stages: .*cannot be the first stage"):
        validate_recipe({**base, "distill": {"stages": ["compressed_reasoning", "answer_only"]}})
    with pytest.raises(RecipeError, match="curation.filter.0: Input tag 'vibes'"):
        validate_recipe({**base, "curation": {"filter": "vibes"}})
    with pytest.raises(RecipeError, match="distill_system1 needs a filter"):
        validate_recipe({**base, "curation": {"filter": "dual_criteria"}, "baselines": ["distill_system1"]})


def test_overrides_reach_list_items_and_say_when_an_index_is_wrong(recipes_dir):
    data = {"task": {"name": "last_letters"}, "teachers": [{"samples": 2}, {"samples": 3}]}
    apply_override(data, "teachers.1.samples=5")
    assert data["teachers"][1]["samples"] == 5
    with pytest.raises(RecipeError, match="'7' is not an index of a list of 2"):
        apply_override(data, "teachers.7.samples=5")


def test_size_small_applies_the_recipes_own_overrides_and_the_command_line_still_wins(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        "task: {name: last_letters, train_size: 512}\nteacher: {samples: 8}\n"
        "sizes:\n  small: {task.train_size: 16, teacher.samples: 2, distill.stages: [answer_only]}\n"
    )
    assert load_recipe(path).task.train_size == 512
    small = load_recipe(path, ["size=small"])
    assert small.task.train_size == 16 and small.teachers[0].samples == 2
    assert load_recipe(path, ["size=small", "teacher.samples=3"]).teachers[0].samples == 3
    with pytest.raises(RecipeError, match="size 'tiny' is not defined by this recipe's sizes section \\(defined: small\\)"):
        load_recipe(path, ["size=tiny"])


def test_training_presets_fill_the_papers_settings_and_the_recipe_wins():
    """`train: {preset: ...}` gives Yu et al. 2024 A.2's and TwT Section 4.1's settings; explicit keys override."""
    from s2distill.config.recipe import TrainConfig
    from s2distill.config.base import identity

    yu = TrainConfig(preset="yu2024")
    assert (yu.mode, yu.dropout, yu.learning_rate, yu.warmup_steps) == ("full", 0.1, 5.5e-6, 1)
    twt = TrainConfig.model_validate({"preset": "twt", "learning_rate": 2e-5})
    assert (twt.mode, twt.lora_r, twt.batch_size, twt.epochs, twt.max_length) == ("lora", 8, 8, 4, 4096)
    assert twt.learning_rate == 2e-5  # the recipe's own key wins over the preset
    assert identity(TrainConfig(preset="twt")) == identity(TrainConfig(**TRAIN_PRESETS_TWT))  # values, not the name
    assert TrainConfig().warmup_steps == 0 and TrainConfig().dropout is None  # no preset: unchanged defaults


TRAIN_PRESETS_TWT = {"mode": "lora", "lora_r": 8, "learning_rate": 1e-5, "batch_size": 8, "epochs": 4, "max_length": 4096}


def test_unknown_training_preset_is_a_clear_error(tmp_path):
    path = write(tmp_path, "task: {name: last_letters}\ntrain: {preset: hinton}\n")
    with pytest.raises(RecipeError, match=r"train: unknown training preset 'hinton'; known: twt, yu2024"):
        load_recipe(path)
    recipe = load_recipe(path, ["train.preset=yu2024", "train.learning_rate=1e-5"])
    assert recipe.train.mode == "full" and recipe.train.learning_rate == 1e-5


def test_every_seed_recipe_loads_at_both_sizes_and_says_how_to_run_it(recipes_dir):
    """recipes/seeds/*.yaml: each loads as shipped and with size=small, and names its command."""
    seeds = sorted((recipes_dir / "seeds").glob("*.yaml"))
    assert len(seeds) >= 9
    for path in seeds:
        assert load_recipe(path).name and load_recipe(path, ["size=small"]).name
        assert f"# Run: s2distill run recipes/seeds/{path.name}" in path.read_text(), path.name
