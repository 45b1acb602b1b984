import { describe, it, expect } from 'vitest';
import { init, tensor, grad, hessian, tidy, memory } from '../index.js';

describe('smoke', () => {
  it('grad of grad on ref', async () => {
    await init({ backend: 'ref' });
    const x = tensor([0.5, -1, 2], undefined, { dtype: 'float64' });
    const g = grad((x: any) => x.tanh().sum())(x);
    console.log(g.toString());
    const g2 = grad((x: any) => grad((y: any) => y.tanh().sum())(x).sum())(x);
    console.log(g2.toString());
    const h = hessian((x: any) => x.mul(x).mul(x).sum())(x);
    console.log(h.toString(), memory());
  });
});
