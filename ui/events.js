// Events (to be built): the section is shown empty.
import { show } from './lib.js';

export async function render() {
  show('events');
}
