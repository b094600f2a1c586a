from edgetl.recipe.load import recipe_json_schema


def test_every_field_in_the_schema_has_a_description():
    schema = recipe_json_schema()
    missing = []
    for name, model in schema["$defs"].items():
        for field, spec in model.get("properties", {}).items():
            if "description" not in spec:
                missing.append(f"{name}.{field}")
    assert not missing, missing


def test_schema_lists_each_stage_type():
    schema = recipe_json_schema()
    mapping = schema["properties"]["stages"]["items"]["discriminator"]["mapping"]
    assert {"finetune", "export", "quantize", "benchmark"} <= set(mapping)
