"""How the suite is split between its two xdist workers (tests/conftest.py, `module_groups`)."""

from conftest import module_groups


def test_modules_naming_one_shared_run_form_one_group_and_the_others_stand_alone(tmp_path):
    (tmp_path / "test_a.py").write_text("def test_x(report_run): ...\n")
    (tmp_path / "test_b.py").write_text("def test_y(report_run, folder_run): ...\n")
    (tmp_path / "test_c.py").write_text("def test_z(folder_run): ...\n")
    (tmp_path / "test_d.py").write_text("def test_w(reference_run_copy): ...\n")
    groups = module_groups(tmp_path)
    assert groups["test_a.py"] == groups["test_b.py"] == groups["test_c.py"]
    assert groups["test_d.py"] == "test_d.py"
