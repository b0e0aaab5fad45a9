import pytest
import torch

from ovavss_cli.device import resolve_device
from ovavss_cli.errors import OvavssError


def test_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "tpu:0"])
def test_bad_spec(spec):
    with pytest.raises(OvavssError, match="--device"):
        resolve_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_an_error(spec):
    with pytest.raises(OvavssError, match="CUDA is not available"):
        resolve_device(spec)
